"""Continue ▶ on a long story: line 30 against line 1 with the prompt's key/value cache, and
the writer's tokens per second against plain transformers `generate` on the same prompt.

    .venv/bin/python -m bench.story [--threads N] [--repeats N] [--lines N] [--quick]

The model is GPT-Neo 125M's architecture built from its config (768 hidden, 12 layers of
alternating global and local attention with a 256-token window, 50257 tokens, 2048
positions) with random weights: a step's time depends on the shapes, not the values. Its
tokenizer is the tiny story model's byte-level BPE (trained on bot.pipelines.tiny's corpus),
its vocabulary filled up to 50257 with one-word tokens that no text encodes to, so every id
the random model samples decodes to a word. The story is realistic prose: each line two
sentences of that corpus (~35 tokens), as GPT-Neo's cleaned lines are.

Sides, each timed in interleaved rounds after a warm-up, medians:

1. Continue at line 1: the real StoryWriter (story.* defaults: 60 new tokens, context 1024)
   writes the line after the seed line, with an empty cache;
2. Continue at line N (default 30): the line after N - 1 lines, the cache holding what the
   previous Continue (line N - 1, untimed, in the same round) read;
3. the same through the runner: a TextParams job run by the real ModelRunner;
4. plain transformers: `model.generate` on line N's prompt, same sampling settings and seed,
   no cache: the tokens per second of (2) against it;
5. the writer on line N without a cache (cache_mb = 0), for what the cache saves.

Tokens per second count the new tokens of the first (only) sequence, prompt reading
included in the time. `--quick` runs the tiny story model (proves the bench runs).
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.common import (
    DEFAULT_MODELS_DIR,
    Table,
    apply_quick,
    median,
    paired_ratio,
    parser,
    pin_threads,
    secs,
    standard_notes,
    timed,
    tiny_models,
    warn_if_busy,
)

GOAL_LINE_RATIO = 1.3  # Continue at line 30 ≤ 1.3 × Continue at line 1
GOAL_SPEED = 1.0  # the writer's tokens/s ≥ plain generate's
SEED_LINE = "Once upon a time, in a valley full of green hills, there lived a girl."
_MARKER = ".greenheart-gpt-neo-125m-architecture-v1"

# EleutherAI/gpt-neo-125M's config.json (the fields that shape the compute).
GPT_NEO_125M: dict[str, Any] = {
    "vocab_size": 50257, "hidden_size": 768, "num_layers": 12, "num_heads": 12,
    "attention_types": [[["global", "local"], 6]], "window_size": 256,
    "max_position_embeddings": 2048, "intermediate_size": None,
    "activation_function": "gelu_new", "bos_token_id": 50256, "eos_token_id": 50256,
}


def build_neo_folder(folder: Path) -> Path:
    """GPT-Neo 125M's architecture, random weights, with a 50257-token tokenizer (once)."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Tokenizer, GPTNeoConfig, GPTNeoForCausalLM

    from bot.pipelines.tiny import CORPUS

    if (folder / _MARKER).exists():
        return folder
    if folder.exists():
        shutil.rmtree(folder)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(CORPUS.splitlines(), vocab_size=1000, min_frequency=2,
                            special_tokens=["<|endoftext|>"])
    state = json.loads(bpe.to_str())["model"]
    vocab: dict[str, int] = dict(state["vocab"])
    eos = GPT_NEO_125M["eos_token_id"]
    # Words no merge reaches (encoding never makes them), up to the model's vocabulary; the
    # end-of-text token at GPT-2's own id, as GPT-Neo has it.
    del vocab["<|endoftext|>"]
    taken = set(vocab.values())
    free = (i for i in range(GPT_NEO_125M["vocab_size"]) if i not in taken)
    for n, i in enumerate(free):
        vocab["<|endoftext|>" if i == eos else f"Ġw{n}"] = i
    merges: Any = [tuple(m.split(" ") if isinstance(m, str) else m) for m in state["merges"]]
    tokenizer = GPT2Tokenizer(vocab=vocab, merges=merges)
    torch.manual_seed(0)
    model = GPTNeoForCausalLM(GPTNeoConfig(**GPT_NEO_125M))
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    (folder / _MARKER).write_text("random-weight GPT-Neo 125M architecture for bench/story\n")
    return folder


def story_lines(count: int) -> list[str]:
    """`count` lines of prose, each two sentences of the corpus, in order, wrapping round."""
    import re

    from bot.pipelines.tiny import CORPUS

    sentences = re.findall(r"[^.!?]+[.!?]+[\"”]?", " ".join(CORPUS.split()))
    sentences = [s.strip() for s in sentences if len(s.split()) > 2]
    return [f"{sentences[(2 * i) % len(sentences)]} {sentences[(2 * i + 1) % len(sentences)]}"
            for i in range(count)]


def interleaved_with_setup(sides: Mapping[str, tuple[Callable[[], object], Callable[[], object]]],
                           *, repeats: int, warmup: int) -> dict[str, list[float]]:
    """bench.common.interleaved, with an untimed set-up right before each timed call."""
    names = list(sides)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(warmup + repeats):
        for name in names if r % 2 == 0 else reversed(names):
            setup, body = sides[name]
            setup()
            seconds = timed(body)
            if r >= warmup:
                times[name].append(seconds)
    return times


class _Context:
    """What the runner needs of the executor, nothing more (no events to pass on)."""

    max_batch = 1

    def progress(self, job: Any, step: int, total: int, preview: Any) -> None: ...

    def notify(self, job: Any, text: str) -> None: ...

    def line(self, job: Any, step: int, total: int, text: str) -> None: ...

    def cancelled(self, job_id: str) -> bool:
        return False


def measure(args: Any) -> Table:
    import dataclasses

    import torch

    from bot.executor.jobs import Job, TextParams
    from bot.pipelines.diffusion import ImageModelOptions
    from bot.pipelines.runner import ModelRunner
    from bot.pipelines.text import StoryWriter, TextModelOptions

    pin_threads(args.threads)
    load_before = warn_if_busy()
    models = tiny_models(args.models)
    folder = models.story if args.quick else build_neo_folder(args.models / "gpt-neo-125m-arch")
    options = TextModelOptions(model=str(folder), device="cpu")
    runner = ModelRunner(ImageModelOptions(model=str(models.image), device="cpu"), options)
    writer = runner.story_writer
    uncached = StoryWriter(dataclasses.replace(options, cache_mb=0))
    uncached.load()
    lines = story_lines(args.lines)
    n = args.lines
    generated: dict[str, list[int]] = {}

    def count_tokens(side: str) -> Any:
        def on_token(step: int, _total: int) -> None:
            generated.setdefault(side, []).append(step)
        return on_token

    def line_1() -> None:
        writer.next_line(SEED_LINE, [], rng_seed=1, cache_key="s",
                         on_token=count_tokens("line 1"))

    def prime() -> None:  # the previous Continue, untimed: the cache holds its prompt
        writer.cache.clear()
        writer.next_line(SEED_LINE, lines[: n - 2], rng_seed=2, cache_key="s")

    def line_n() -> None:
        writer.next_line(SEED_LINE, lines[: n - 1], rng_seed=3, cache_key="s",
                         on_token=count_tokens("line n"))

    def through_runner() -> None:
        job = Job(user_id=1, params=TextParams(seed_line=SEED_LINE, lines=tuple(lines[: n - 1]),
                                               rng_seed=3, cache_key="s"))
        [result] = runner.run([job], _Context())
        assert not isinstance(result, Exception), result

    prompt = writer._prompt_ids(SEED_LINE, lines[: n - 1])
    plain_tokens: list[int] = []

    def plain() -> None:
        o = options
        with torch.random.fork_rng(), torch.inference_mode():
            torch.manual_seed(3)
            out = writer.model.generate(
                input_ids=prompt, attention_mask=torch.ones_like(prompt), do_sample=True,
                max_new_tokens=o.max_new_tokens, min_new_tokens=4, temperature=o.temperature,
                top_p=o.top_p, top_k=o.top_k, repetition_penalty=o.repetition_penalty,
                pad_token_id=writer.tokenizer.eos_token_id)
        plain_tokens.append(int(out.shape[1] - prompt.shape[1]))

    def without_cache() -> None:
        uncached.next_line(SEED_LINE, lines[: n - 1], rng_seed=3,
                           on_token=count_tokens("no cache"))

    def nothing() -> None: ...

    # side: (untimed set-up, timed body). Line N's sides start from the cache the previous
    # Continue left; line 1 from an empty one.
    sides = {"line 1": (lambda: writer.cache.clear(), line_1), "line n": (prime, line_n),
             "runner": (prime, through_runner), "plain": (nothing, plain),
             "no cache": (nothing, without_cache)}
    times = interleaved_with_setup(sides, repeats=args.repeats, warmup=args.warmup)
    prime()
    line_n()
    stats = writer.last_stats

    def tokens(side: str) -> float:
        # The last step of each round's line (a line may be cut short by EOS).
        steps = generated.get(side, [])
        finals = [steps[i] for i in range(len(steps)) if i + 1 == len(steps)
                  or steps[i + 1] <= steps[i]]
        return median([float(f) for f in finals])

    t1, tn, tr = median(times["line 1"]), median(times["line n"]), median(times["runner"])
    tp, tu = median(times["plain"]), median(times["no cache"])
    line_ratio = paired_ratio(times["line n"], times["line 1"])
    runner_ratio = paired_ratio(times["runner"], times["line 1"])
    speed = (tokens("line n") / tn) / (median([float(t) for t in plain_tokens]) / tp)
    what = "tiny story model (--quick)" if args.quick else "GPT-Neo 125M architecture"
    table = Table(f"Continue on a long story, {what}", ["side", "median", "tokens", "tokens/s"])

    def row(label: str, seconds: float, count: float) -> None:
        table.add(label, secs(seconds), f"{count:.0f}", f"{count / seconds:.1f}")

    row("1. Continue at line 1 (writer, empty cache)", t1, tokens("line 1"))
    row(f"2. Continue at line {n} (writer, cache of line {n - 1}'s prompt)", tn,
        tokens("line n"))
    table.add(f"3. Continue at line {n} through the runner (a TextParams job)", secs(tr),
              "-", "-")
    row(f"4. plain `generate` on line {n}'s prompt (baseline for tokens/s)", tp,
        median([float(t) for t in plain_tokens]))
    row(f"5. Continue at line {n} without the cache (cache_mb = 0)", tu, tokens("no cache"))
    table.figures.update(line_ratio=line_ratio, runner_ratio=runner_ratio, speed=speed,
                         prompt_tokens=float(stats.prompt_tokens),
                         cached_tokens=float(stats.cached_tokens))
    table.notes += [
        f"goal: line {n} ≤ {GOAL_LINE_RATIO}× line 1: measured **{line_ratio:.3f}×** (paired "
        f"median; through the runner {runner_ratio:.3f}×)",
        f"goal: the writer's tokens/s ≥ {GOAL_SPEED:.0%} of plain generate's on the same "
        f"prompt: measured **{speed:.2f}×**",
        f"line {n}'s prompt: {stats.prompt_tokens} tokens, {stats.cached_tokens} of them "
        f"from the cache (story.context_tokens {options.context_tokens}, "
        f"max_new_tokens {options.max_new_tokens})",
        *standard_notes(args, load_before),
    ]
    return table


def main(argv: Sequence[str] | None = None) -> Table:
    p = parser(__doc__.split("\n")[0], repeats=5)
    p.add_argument("--lines", type=int, default=30, help="the long Continue's line number")
    args = apply_quick(p.parse_args(argv), lines=8)
    if args.models == DEFAULT_MODELS_DIR:
        args.models.mkdir(parents=True, exist_ok=True)
    table = measure(args)
    table.print()
    return table


if __name__ == "__main__":
    main(sys.argv[1:])
