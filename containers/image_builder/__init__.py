"""Build an Apptainer definition file without Apptainer, with Apptainer's semantics for the
sections it uses (see `containers/README.md`): debootstrapped bases, `%files` (also `from` an
earlier stage), `%post` in a chroot, the `/.singularity.d` metadata, then a directory image, a
SquashFS, a SIF and its SHA-256, and `%test` run unprivileged with Charliecloud's `ch-run`.

Only the standard library; run as `PYTHONPATH=containers python -m image_builder ...`.

Modules: `definition` (parse and validate), `rootfs` (bases, `%files`, `%post`), `metadata`
(`/.singularity.d`, `/ch/environment`), `artifacts` (SquashFS, SIF, checksum, `%test`),
`build` (one build, all or nothing), `__main__` (command line).
"""
