"""OCR: text from a page image, in reading order, with RapidOCR (PP-OCRv6 small on ONNX Runtime).

The engine is created once per process, on the first page that needs it (loading the models costs ~1-5 s and
~0.5 GB), so `import kb.extract.ocr` stays cheap and a run without scans never pays for it. It is offline by
construction: the detection and recognition model paths are the files inside the installed rapidocr wheel,
passed explicitly, which is the one configuration in which RapidOCR never enters its download code (with no
path it checks a SHA-256 and would fetch from modelscope.cn on a mismatch).

Choices, measured on a shared 2-core machine (docs/extraction.md):
* the text-line 0/180 classifier is off: it flipped long, slightly skewed English lines and turned them into
  garbage; whole-page orientation is fixed here instead (a page on its side: boxes taller than wide; upside
  down: a low recognition score, retried turned 180 degrees);
* one intra-op thread: on the loaded 2-core box it beat two (5.5 s vs 6.0 s an English page), and extraction
  workers already run in parallel with embedding;
* images are shrunk to a 2000 px longer side (RapidOCR's default): 300 dpi costs the same as 200 and true
  300 dpi (4000 px) costs 2-2.6x for no gain;
* the text detector sees the page at a 1280 px longer side (`DET_SIDE`; RapidOCR's default keeps the image's own
  size above 736 px) and recognition reads one line per call (`REC_BATCH`; default 6, padded to the widest
  line): a 1651x1275 scanned page peaks at ~0.6 GB instead of ~0.85 GB and reads in 6.1 s instead of 9.3 s, with
  bench/ocr.py's accuracy the same or better (English mean 0.989 -> 0.995, Chinese 0.999 -> 1.000);
* freed heap is given back after every page (kb.heap): the engine rests at ~0.16 GB instead of ~0.45.
"""

from __future__ import annotations

from pathlib import Path

from kb.heap import give_back_freed_memory

__all__ = ["DPI", "MODEL_FILES", "model_paths", "engine", "ocr_image", "ocr_lines", "set_page_listener"]

DPI = 150  # PDF pages are rendered at this resolution for OCR (accuracy the same as 200/300 dpi, fastest)
THREADS = 1
DET_SIDE = 1280  # the text detector sees the page shrunk to this longer side (recognition reads the full image)
REC_BATCH = 1  # text lines recognised per call
MIN_SCORE = 0.90  # mean recognition score under which a page is also read turned 180 degrees
MODEL_FILES = {"Det": "PP-OCRv6_det_small.onnx", "Rec": "PP-OCRv6_rec_small.onnx",
               "Cls": "ch_ppocr_mobile_v2.0_cls_mobile.onnx"}
# OCR reads some symbols as their compatibility forms; the text layer of the same page has the plain ones
_COMPAT = str.maketrans({"℃": "°C", "℉": "°F"})

_ENGINE = None
_LISTENER = None  # called after every page image read, e.g. to move an ingest's progress bar during a long scan


def set_page_listener(listener) -> None:
    """Call `listener()` after each page image OCR reads in this process (None: stop)."""
    global _LISTENER
    _LISTENER = listener


def model_paths() -> dict[str, Path]:
    """The model files packaged in the rapidocr wheel (what kb passes to RapidOCR)."""
    import rapidocr

    root = Path(rapidocr.__file__).parent / "models"
    return {step: root / name for step, name in MODEL_FILES.items()}


def engine():
    """This process's RapidOCR engine, created on first use."""
    global _ENGINE
    if _ENGINE is None:
        import logging

        from rapidocr import RapidOCR

        params = {f"{step}.model_path": str(p) for step, p in model_paths().items()}
        params.update({
            "Global.log_level": "error",
            "Global.use_cls": False,
            "Global.max_side_len": 2000,
            "Det.limit_type": "max",
            "Det.limit_side_len": DET_SIDE,
            "Rec.rec_batch_num": REC_BATCH,
            "EngineConfig.onnxruntime.intra_op_num_threads": THREADS,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        })
        _ENGINE = RapidOCR(params=params)
        logging.getLogger("RapidOCR").setLevel(logging.ERROR)
    return _ENGINE


def ocr_lines(img) -> list[tuple]:
    """One OCR pass over an image (H x W grey or H x W x 3 uint8): [(box 4x2, text, score)]."""
    import numpy as np

    # the steps are passed explicitly: a call with use_rec=False would change the engine's defaults
    res = engine()(img, use_det=True, use_cls=False, use_rec=True)
    if res.boxes is None or res.txts is None:
        return []
    return [(np.asarray(b, dtype=float), t, float(s)) for b, t, s in zip(res.boxes, res.txts, res.scores)]


def _mean_score(lines) -> float:
    chars = sum(len(t) for _, t, _ in lines)
    return sum(s * len(t) for _, t, s in lines) / chars if chars else 0.0


def _on_its_side(lines) -> bool:
    import numpy as np

    if len(lines) < 3:
        return False
    b = np.asarray([box for box, _, _ in lines])
    w = np.linalg.norm(b[:, 1] - b[:, 0], axis=1)
    h = np.linalg.norm(b[:, 3] - b[:, 0], axis=1)
    return float(np.median(h / np.maximum(w, 1))) > 1.5


def upright_lines(img) -> list[tuple]:
    """OCR lines of a page in any of the four orientations. An upright page costs one pass; a page on its side or
    upside down costs two or three."""
    import numpy as np

    lines = ocr_lines(img)
    if _on_its_side(lines):
        img = np.ascontiguousarray(np.rot90(img, 1))
        lines = ocr_lines(img)
    if lines and _mean_score(lines) < MIN_SCORE:
        turned = ocr_lines(np.ascontiguousarray(np.rot90(img, 2)))
        if _mean_score(turned) > _mean_score(lines):
            lines = turned
    return lines


def ocr_image(img) -> str:
    """The text of a page image in reading order (columns, skew and orientation handled); "" if none."""
    from kb.extract.reading_order import lines_to_text

    text = lines_to_text(upright_lines(img)).translate(_COMPAT)
    give_back_freed_memory()  # a page's activations, which glibc would keep (~450 -> ~160 MB resident after it)
    if _LISTENER is not None:
        _LISTENER()
    return text
