"""``-c N`` offline: the input read once, by one reader thread in the
parent, each packet copied into the ring of the core that owns it
(native/feed.c; the API in native/mosfw_feed.h, part of mosfw_api.h).

The parent makes the :class:`Feed` before forking the workers (the input
is opened then: an input that cannot be read fails the run at once, with
the message one core gives), starts it once they are forked, and
finishes it once they are done. Each worker opens its core on the feed
(:meth:`mosfw.engine.Core.open`) instead of the file.
"""

from __future__ import annotations

import os

from mosfw._native import ffi, lib
from mosfw.engine import InputError
from mosfw.runconfig import Config
from mosfw.tunnels import set_decap_config

__all__ = ["Feed"]


class Feed:
    """The reader of ``config``'s input (``-r FILE``, or the files of
    ``read_files``) for ``cores`` cores.

    :raises InputError: the input cannot be read (as one core says it).
    """

    def __init__(self, config: Config, cores: int) -> None:
        cfg = ffi.new("struct mosfw_config *")
        lib.mosfw_config_defaults(cfg)
        cfg.verify_checksums = 1 if config.verify_checksums else 0
        cfg.input_size = int(getattr(config, "read_file_size", 0) or 0)
        set_decap_config(cfg.decap, config)
        files = getattr(config, "read_files", None)
        self.paths: list[str] = list(files) if files else [str(config.read_file)]
        keep = [ffi.new("char[]", os.fsencode(p)) for p in self.paths]
        err = ffi.new("char[]", lib.MOSFW_ERRBUF_SIZE)
        bpf = (config.bpf or "").encode()
        f = lib.mosfw_feed_new(cfg, cores, ffi.new("char *[]", keep), len(keep), 1 if files else 0, bpf, err)
        if f == ffi.NULL:
            raise InputError(ffi.string(err).decode(errors="replace"))
        self._f = f
        self._as_set = bool(files)

    @property
    def handle(self):
        """The C feed (``struct mosfw_feed *``) the cores open."""
        return self._f

    def start(self) -> None:
        """Start reading (once the workers are forked: the thread is not
        copied into them)."""
        err = ffi.new("char[]", lib.MOSFW_ERRBUF_SIZE)
        if lib.mosfw_feed_start(self._f, err) != 0:
            raise InputError(ffi.string(err).decode(errors="replace"))

    def drop(self, core: int) -> None:
        """Core ``core``'s worker died: its packets are dropped from now on
        (the reader does not wait for it)."""
        lib.mosfw_feed_drop(self._f, core)

    def finish(self) -> list:
        """Stop reading if it has not ended, wait for the reader; the
        many-file input's :class:`mosfw.inputs.InputFile` records ([] for
        one file)."""
        lib.mosfw_feed_finish(self._f)
        if not self._as_set:
            return []
        from mosfw.inputs import input_files_from_core

        out = ffi.new("struct mosfw_input_file[]", len(self.paths))
        n = lib.mosfw_feed_files(self._f, out, len(self.paths))
        return input_files_from_core(out[0 : min(n, len(self.paths))], self.paths)

    def close(self) -> None:
        """Finish and free (every worker is done)."""
        if self._f is not None:
            lib.mosfw_feed_free(self._f)
            self._f = None
