"""Open an Office Open XML package (.pptx, .docx) for python-pptx/-docx, decrypting it if needed.

A password-protected .pptx/.docx is not a zip but an OLE2 compound file holding an `EncryptionInfo`
and an `EncryptedPackage` stream. msoffcrypto-tool reads the container (with olefile) and decrypts
ECMA-376 Agile encryption (Office 2010 and later) and Standard encryption (Office 2007, AES); kb only
turns its exceptions into one-line reasons. An OLE2 file without those streams is a legacy .ppt/.doc
under a new name, which gets a hint to convert it.
"""

from __future__ import annotations

import io
import logging
import struct
from pathlib import Path

from kb.document import ExtractionError
from kb.extract.common import CFB_MAGIC, ZIP_MAGIC, short_reason

__all__ = ["open_ooxml", "decrypt_ooxml"]

# The main stream of the legacy binary format each kind replaced, its suffix, and the new suffix.
_LEGACY = {"PowerPoint": ("PowerPoint Document", ".ppt", "pptx"), "Word": ("WordDocument", ".doc", "docx")}


def open_ooxml(path: Path, password: str | None, kind: str) -> str | io.BytesIO:
    """The package to hand to python-pptx/-docx: the path of a plain zip package, or the decrypted
    bytes of a password-protected one. `kind` ("PowerPoint", "Word") names the format in messages."""
    with open(path, "rb") as f:
        head = f.read(8)
    from kb.extract.limits import check_zip_package

    if head.startswith(ZIP_MAGIC):
        check_zip_package(str(path), kind)
        return str(path)
    if head != CFB_MAGIC:
        raise ExtractionError(f"broken {kind} file: not a zip package")
    package = io.BytesIO(decrypt_ooxml(Path(path).read_bytes(), password, kind))
    check_zip_package(package, kind)
    return package


def decrypt_ooxml(data: bytes, password: str | None, kind: str) -> bytes:
    """The decrypted zip package of a password-protected .pptx/.docx, or an ExtractionError."""
    try:
        import msoffcrypto
        import olefile
        from msoffcrypto.exceptions import DecryptionError, InvalidKeyError
    except ImportError as e:  # pragma: no cover - dependency missing
        raise ExtractionError(f"encrypted: decryption needs the 'msoffcrypto-tool' package ({short_reason(e)})"
                              ) from None
    # msoffcrypto logs the password and derived keys at DEBUG level: never let them reach a handler.
    logging.getLogger("msoffcrypto").setLevel(logging.WARNING)

    try:
        ole = olefile.OleFileIO(io.BytesIO(data))
    except Exception as e:  # olefile raises OSError, struct.error, IndexError ... on damaged headers
        raise ExtractionError(f"broken {kind} file: damaged OLE2 container ({short_reason(e)})") from None
    try:
        if not (ole.exists("EncryptedPackage") and ole.exists("EncryptionInfo")):
            stream, old, new = _LEGACY.get(kind, ("", "", ""))
            if stream and ole.exists(stream):
                raise ExtractionError(f"legacy {kind} format ({old}) with a .{new} name; convert it to .{new}, "
                                      f"e.g. `libreoffice --headless --convert-to {new} FILE`")
            raise ExtractionError(f"not a {kind} file: an OLE2 container without an Office package")
        if not password:
            raise ExtractionError("encrypted: password required (use --password)")
        try:
            info = ole.openstream("EncryptionInfo").read()
            major, minor = struct.unpack_from("<HH", info, 0)
        except Exception as e:
            raise ExtractionError(f"broken {kind} file: cannot read encrypted package ({short_reason(e)})") from None
    finally:
        ole.close()
    if (major, minor) == (4, 4) and b"keyEncryptor/password" not in info:
        raise ExtractionError("encrypted: no password key in the file (certificate encryption?)")

    try:
        office = msoffcrypto.OfficeFile(io.BytesIO(data))
    except DecryptionError as e:  # e.g. "Unsupported EncryptionInfo version (Extensible Encryption)"
        raise ExtractionError(f"encrypted: {short_reason(e)}; re-save the file without a password "
                              "or in a current Office version") from None
    except Exception as e:
        raise ExtractionError(f"broken {kind} file: cannot read encrypted package ({short_reason(e)})") from None
    try:
        office.load_key(password=password, verify_password=True)
    except InvalidKeyError:
        raise ExtractionError("encrypted: wrong password") from None
    except Exception as e:
        raise ExtractionError(f"encrypted: cannot decrypt ({type(e).__name__}: {short_reason(e)})") from None
    out = io.BytesIO()
    try:
        office.decrypt(out)
    except InvalidKeyError:  # the password checked out, yet the plaintext is no zip
        raise ExtractionError(f"broken {kind} file: the decrypted package is not a zip (truncated or damaged?)"
                              ) from None
    except Exception as e:  # e.g. a cut-off stream that is no longer whole cipher blocks
        raise ExtractionError(f"broken {kind} file: damaged encrypted package ({short_reason(e)})") from None
    return out.getvalue()
