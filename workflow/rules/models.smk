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
    params:
        entry=lambda wildcards: registry_entry(
            registry_section(wildcards.model), wildcards.model
        ),
        section=lambda wildcards: registry_section(wildcards.model),
    script:
        "../scripts/fetch_model.py"
