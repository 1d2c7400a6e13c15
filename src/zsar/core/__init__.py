"""The method and its arithmetic: kinds of class text, fusions and variants (`method`),
accuracies and their intervals (`metrics`, `stats`), the names written into paths
(`names`), and what a record reports as its protocol (`protocol`, `class_names`,
`references`). Pure: nothing here reads a video or loads a model."""
