"""Where the workflow and the library agree: the config and its checks (`config`), the
run plan (`plan`), the stage table (`stage_table`: outputs, cache keys, upstream stages),
the start of a job (`job`), each rule's resources (`resources`) and the end-of-run lines
(`run_summary`)."""
