"""What travels between the bot and a worker survives the trip exactly."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from bot.executor.jobs import (
    DescribeParams,
    GeneratedImage,
    ImageMode,
    ImageParams,
    ImageResult,
    Job,
    JobKind,
    TextParams,
    TextResult,
)
from bot.remote.protocol import (
    BatchResult,
    BatchTask,
    Outcome,
    batch_task,
    queue_for,
    with_local_sources,
)


def params(**changes: object) -> ImageParams:
    base = dict(prompt="a fox", negative="blurry", subject="a fox", style=None, seeds=(1, 2),
                steps=4, guidance=7.0, width=64, height=64)
    base.update(changes)
    return ImageParams(**base)  # type: ignore[arg-type]


def test_queues_are_named_by_kind_and_model() -> None:
    assert queue_for(JobKind.IMAGE, "sd") != queue_for(JobKind.TEXT, "sd")
    assert queue_for(JobKind.IMAGE, "a") != queue_for(JobKind.IMAGE, "b")


def test_a_batch_carries_its_source_pictures(tmp_path: Path) -> None:
    source = tmp_path / "bot-side.png"
    Image.new("RGB", (8, 8), (10, 200, 30)).save(source)
    variation = Job(user_id=1, params=params(mode=ImageMode.VARIATION, strength=0.5,
                                             source_path=str(source)))
    gone = Job(user_id=2, params=params(mode=ImageMode.UPSCALE,
                                        source_path=str(tmp_path / "deleted.png")))
    text = Job(user_id=3, params=TextParams("The sky", ("one",), 7), attempts=1)
    task = batch_task("b1", "q", [variation, gone, text])
    assert set(task.sources) == {variation.id}

    received = BatchTask.from_json(json.loads(json.dumps(task.to_json())))
    assert [j.id for j in received.jobs] == [variation.id, gone.id, text.id]
    assert received.jobs[2].params == text.params and received.jobs[2].attempts == 1
    worker_dir = tmp_path / "worker"
    worker_dir.mkdir()
    jobs = with_local_sources(received, worker_dir)
    local = jobs[0].params
    assert isinstance(local, ImageParams) and Path(str(local.source_path)).parent == worker_dir
    with Image.open(str(local.source_path)) as img:
        assert img.getpixel((3, 3)) == (10, 200, 30)
    missing = jobs[1].params
    assert isinstance(missing, ImageParams) and not Path(str(missing.source_path)).exists()
    assert jobs[0].params == params(mode=ImageMode.VARIATION, strength=0.5,
                                    source_path=local.source_path)


def test_results_come_back_pixel_exact() -> None:
    picture = Image.new("RGB", (16, 8))
    picture.putdata([(i * 7 % 256, i * 13 % 256, i % 256) for i in range(16 * 8)])
    image = ImageResult((GeneratedImage(picture, 42, nsfw=True, label="watercolor"),),
                        {"generate_s": 1.5}, "tiny", "Euler a")
    result = BatchResult("b1", "w1", 2.0, (
        Outcome("j1", result=image), Outcome("j2", result=TextResult("Then.", {}, "neo")),
        Outcome("j3", error="the source image is gone")))
    back = BatchResult.from_json(json.loads(json.dumps(result.to_json())))
    assert (back.batch_id, back.worker, back.seconds, back.error) == ("b1", "w1", 2.0, None)
    got = back.outcomes[0].result
    assert isinstance(got, ImageResult)
    assert got.images[0].image.tobytes() == picture.tobytes()
    assert (got.images[0].seed, got.images[0].nsfw, got.images[0].label) == (42, True,
                                                                            "watercolor")
    assert (got.model, got.sampler, got.timings) == ("tiny", "Euler a", {"generate_s": 1.5})
    assert back.outcomes[1].result == TextResult("Then.", {}, "neo")
    assert back.outcomes[2] == Outcome("j3", error="the source image is gone")
    oom = BatchResult.from_json(BatchResult("b2", "w1", 0.1, error="CUDA", oom=True).to_json())
    assert oom.oom and oom.error == "CUDA" and not oom.outcomes


def test_a_describe_job_carries_its_members_picture(tmp_path: Path) -> None:
    source = tmp_path / "inputs" / "mine.png"
    source.parent.mkdir()
    Image.new("RGB", (8, 8), (200, 10, 90)).save(source)
    job = Job(user_id=1, params=DescribeParams(source_path=str(source), count=3,
                                               max_new_tokens=40, seed=9))
    assert queue_for(job.kind, "blip") == "greenheart.describe.blip"
    received = BatchTask.from_json(json.loads(json.dumps(batch_task("b2", "q", [job]).to_json())))
    worker_dir = tmp_path / "worker"
    worker_dir.mkdir()
    [local] = with_local_sources(received, worker_dir)
    assert isinstance(local.params, DescribeParams) and local.kind is JobKind.DESCRIBE
    assert Path(local.params.source_path).parent == worker_dir
    assert local.params == DescribeParams(local.params.source_path, 3, 40, 9)
    with Image.open(local.params.source_path) as img:
        assert img.getpixel((3, 3)) == (200, 10, 90)


def test_a_story_lines_candidates_and_cache_key_travel() -> None:
    from bot.executor.jobs import Job, TextParams
    from bot.remote.protocol import BatchTask, batch_task

    params = TextParams(seed_line="Once.", lines=("Then.",), rng_seed=3, candidates=3,
                        cache_key="story:7:2")
    task = batch_task("b1", "q", [Job(user_id=1, params=params)])
    assert BatchTask.from_json(json.loads(json.dumps(task.to_json()))).jobs[0].params == params
    written = TextResult("A.", {"generate_s": 0.5, "cached_tokens": 40.0}, "neo",
                         candidates=("A.", "B.", "C."))
    back = BatchResult.from_json(json.loads(json.dumps(
        BatchResult("b1", "w1", 1.0, (Outcome("j1", result=written),)).to_json())))
    assert back.outcomes[0].result == written
