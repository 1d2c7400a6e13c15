"""One module per stage of the workflow, each a pure core and a thin I/O edge that a
workflow script calls: `manifest`, `frames`, `captions`, `descriptors`, `embed` (videos),
`embed_text` (class names, descriptors, captions), `scoring`, `compare`, `explain`."""
