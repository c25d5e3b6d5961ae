"""Episodes as LeRobotDataset v3.0: writer.py (crash-safe recording), reader.py (episodes, frames, norm stats),
samples.py (training samples with action chunks), merge.py, stats.py, video.py, layout.py (names and schemas),
staging.py (the running episode's crash journal), rerun_export.py (.rrd review files).

Nothing is imported here: pyarrow, pandas and PyAV load only when a submodule is used."""
