# Model weights: fetched (or, for tiny demo models, built) once into resources/models/.
# A local rule, so on a cluster it runs on the login node, which has internet; the GPU
# jobs then load from resources/ with HF_HUB_OFFLINE=1.


localrules:
    fetch_model,


rule fetch_model:
    output:
        ready=str(ready_path(RESOURCES, "{model}")),
    log:
        "results/logs/fetch_model/{model}.log",
    conda:
        "../../envs/torch.yaml"
    resources:
        mem_mb=mem_mb("fetch_model"),
        runtime=runtime("fetch_model"),
    params:
        model=lambda wildcards: WIRING.fetch_key(wildcards.model),
        section=lambda wildcards: WIRING.section_of(wildcards.model),
        code=code("fetch_model"),
    script:
        "../scripts/fetch_model.py"
