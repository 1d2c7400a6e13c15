"""Rule caption_shard: one frames shard -> captions and caption failures."""

from zsar.pipeline.job import model_entry, start_job


def main(smk) -> None:
    from zsar.stages.captions import run_caption_stage

    run_caption_stage(
        frames_shard=smk.input.frames,
        out=smk.output.captions,
        failures_out=smk.output.failures,
        entry=model_entry(smk, "captioners", smk.wildcards.captioner),
        prompt_set_path=smk.input.prompts,
        max_new_tokens=smk.params.max_new_tokens,
        # Read from config, not a rule param: batching does not change the captions, so a
        # new batch size must not re-run the stage.
        batch_size=smk.config["captions"]["batch_size"],
        resources=smk.config["resources"],
        device="auto",
    )


if __name__ == "__main__":
    start_job(snakemake)
    main(snakemake)
