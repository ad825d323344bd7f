"""One io layer under everything: atomic writes (bytes, JSON, npz, safetensors, folders) and
checked reads that name the file on any failure. No other module writes files its own way."""

from .atomic import (AtomicNpyWriter, StagedFile, atomic_npy_writer, atomic_save_npz, atomic_save_tensors,
                     atomic_write_bytes, atomic_write_dir,
                     atomic_write_json, atomic_write_text, json_default, sha256_bytes, sha256_file)
from .checked import (ArtifactError, MissingArtifactError, file_checksums, load_npy, load_npz, load_tensors,
                      read_bytes, read_checked_json, read_json, verify_checksums)

__all__ = ["AtomicNpyWriter", "atomic_npy_writer", "StagedFile", "atomic_save_npz", "atomic_save_tensors",
           "atomic_write_bytes", "atomic_write_dir",
           "atomic_write_json", "atomic_write_text", "json_default", "sha256_bytes", "sha256_file", "ArtifactError",
           "MissingArtifactError", "file_checksums", "load_npy", "load_npz", "load_tensors", "read_bytes",
           "read_checked_json", "read_json", "verify_checksums"]
