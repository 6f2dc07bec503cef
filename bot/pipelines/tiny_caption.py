"""A tiny random-weight BLIP captioning model that loads exactly like the real one, offline.

`build_tiny_blip(folder)` writes a BlipForConditionalGeneration (2-layer vision and text
towers, hidden size 32, 32×32 pictures) with its processor: a BlipImageProcessor and a BERT
tokenizer made here from a small word list (BLIP's real one is bert-base-uncased's, with
"[DEC]" as the start of a caption). Everything is written with `save_pretrained`, so
`AutoProcessor` / `BlipForConditionalGeneration.from_pretrained(folder)` load it as they
load "Salesforce/blip-image-captioning-large". The weights are random (seeded): captions are
strings of the words below, but every shape and code path is real.
"""

from __future__ import annotations

import shutil
from pathlib import Path

_MARKER = ".greenheart-tiny-blip-v1"
_SEED = 0
_SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
# Words a caption of a picture is made of (and the prefixes bot.pipelines.caption starts from).
_WORDS = """
a an the of and with in on at by near under over two three
painting photograph illustration drawing picture photo portrait view close up
cat dog fox bird horse fish dragon robot girl boy man woman people child
tree trees flower flowers garden forest field grass river lake sea beach mountain hill
sky cloud clouds sun moon star stars night day sunset rain snow
house city street road bridge car boat ship lighthouse castle tower window door
red blue green yellow white black orange purple pink brown grey golden
small large old young tall little big bright dark quiet happy
sitting standing walking flying running sleeping looking holding
"""


def build_tiny_blip(folder: Path) -> Path:
    """Write the tiny BLIP into `folder` (skipped when a complete one is there); returns it."""
    folder = Path(folder)
    if (folder / _MARKER).exists():
        return folder
    if folder.exists():  # half-written by an interrupted build: start clean
        shutil.rmtree(folder)
    folder.mkdir(parents=True)

    import torch
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    words = list(dict.fromkeys(_WORDS.split()))  # unique, in order
    vocab = {token: i for i, token in enumerate([*_SPECIAL, *".,!?'-", *words])}
    # transformers 5: BertTokenizer is the fast (tokenizers) one, built from a vocab dict.
    tokenizer = BertTokenizer(vocab=vocab, do_lower_case=True, model_max_length=64)
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})  # BLIP's start of a caption
    processor = BlipProcessor(
        image_processor=BlipImageProcessor(size={"height": 32, "width": 32}),
        tokenizer=tokenizer)
    config = BlipConfig(
        vision_config={"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
                       "num_attention_heads": 4, "image_size": 32, "patch_size": 8},
        text_config={"vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 37,
                     "num_hidden_layers": 2, "num_attention_heads": 4,
                     "max_position_embeddings": 64,
                     "bos_token_id": tokenizer.bos_token_id,
                     "pad_token_id": tokenizer.pad_token_id,
                     "sep_token_id": tokenizer.sep_token_id,
                     "eos_token_id": tokenizer.sep_token_id},
        projection_dim=32,
    )
    torch.manual_seed(_SEED)
    model = BlipForConditionalGeneration(config).eval()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    (folder / _MARKER).write_text("tiny BLIP built by bot.pipelines.tiny_caption\n",
                                  encoding="utf-8")
    return folder
