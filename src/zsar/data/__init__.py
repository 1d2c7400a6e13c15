"""What zsar reads and writes: benchmark annotation files (`adapters`, `lists`, `demo`),
Parquet and JSON with provenance (`io`, `provenance`), the limits on files zsar did not
write (`limits`, `walk`), caption files made elsewhere (`caption_files`), and descriptor
documents (`descriptor_records`), the files they are imported from (`descriptor_formats`,
`descriptor_classes`, `descriptor_sources`) and exported to (`descriptor_export`). The
package data beside them (`vificlip_lists.yaml`) is read through `importlib.resources`."""
