"""Quiet model loading: transformers and sentence-transformers print progress bars and deprecation chatter
on stderr while a model loads; kb reports loading itself. transformers is imported only on entering."""

from __future__ import annotations


class quiet_loading:
    """Model loading prints progress bars and deprecation chatter on stderr; kb reports loading itself."""

    def __enter__(self):
        import logging
        import warnings

        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.simplefilter("ignore", FutureWarning)
        self._level = logging.getLogger("transformers").level
        logging.getLogger("transformers").setLevel(logging.ERROR)
        try:
            from transformers.utils import logging as hf_logging

            self._bars = hf_logging.is_progress_bar_enabled()
            hf_logging.disable_progress_bar()
        except Exception:
            self._bars = None
        return self

    def __exit__(self, *exc):
        import logging

        logging.getLogger("transformers").setLevel(self._level)
        if self._bars:
            from transformers.utils import logging as hf_logging

            hf_logging.enable_progress_bar()
        self._warnings.__exit__(*exc)
        return False
