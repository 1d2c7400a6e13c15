"""The edges users touch: `zsar predict`, the tables and the report built from finished
runs' records, `zsar config`, `zsar descriptors` (`descriptors_command`), and finding the
checkout a command runs against."""
