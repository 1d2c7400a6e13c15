"""Rule descriptors: class list -> attributes, descriptions and hierarchy per class (JSON)."""

from zsar.pipeline.job import model_entry, start_job


def main(smk) -> None:
    from zsar.stages.descriptors import run_descriptor_stage

    run_descriptor_stage(
        classes_path=smk.input.classes,
        out_path=smk.output[0],
        entry=model_entry(smk, "llms", smk.wildcards.llm),
        prompt_set_path=smk.input.prompts,
        max_new_tokens=smk.params.max_new_tokens,
        # Not a param: the batch size changes speed, not the answers, so it is no cache key.
        batch_size=smk.config["descriptors"]["batch_size"],
        repair_attempts=smk.params.repair_attempts,
        resources=smk.config["resources"],
        device="auto",
    )


if __name__ == "__main__":
    start_job(snakemake)
    main(snakemake)
