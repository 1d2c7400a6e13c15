"""Models: the registry and its backends (`registry`), how a backbone is loaded, fed and
run (`backbones`, `preprocess`, `device_frames`, `convert`, `devices`), fetching weights
(`fetch`), the captioner backends (`captioners`), what they are given (`caption_inputs`) and
how they run in batches (`batching`), the tiny random models of the demo and tests (`tiny`),
the OpenAI-compatible client (`chat`) and which models of a record were demo models
(`model_origins`)."""
