"""What zsar reads and writes: benchmark annotation files (`adapters`, `lists`, `demo`),
Parquet and JSON with provenance (`io`, `provenance`), the limits on files zsar did not
write (`limits`, `walk`), and descriptor documents and the files they are imported from
(`descriptor_records`, `descriptor_files`). The package data beside them
(`vificlip_lists.yaml`) is read through `importlib.resources`."""
