"""Decrypt password-protected Office files (.pptx/.docx) with the password the user gave.

Such files are not zips but OLE2 compound files (MS-CFB) holding an `EncryptionInfo` stream and an
`EncryptedPackage` stream, which is the AES-encrypted zip. This module reads the two streams with a
minimal CFB reader and implements ECMA-376 "Agile" encryption (MS-OFFCRYPTO 2.3.4.10-15, what Office
2010 and later write), using `cryptography` (already required for AES-encrypted PDFs). The older
"Standard" scheme (Office 2007) and RC4 are reported as unsupported rather than guessed at.
"""

from __future__ import annotations

import base64
import hashlib
import struct

from kb.document import ExtractionError
from kb.extract._util import CFB_MAGIC

_FREESECT, _ENDOFCHAIN = 0xFFFFFFFF, 0xFFFFFFFE


class _CFBError(Exception):
    pass


class CompoundFile:
    """Just enough of MS-CFB to read a named stream."""

    def __init__(self, data: bytes):
        if len(data) < 512 or not data.startswith(CFB_MAGIC):
            raise _CFBError("not an OLE2 compound file")
        self.data = data
        (self.sector_shift, self.mini_shift) = struct.unpack_from("<HH", data, 0x1E)
        if self.sector_shift not in (9, 12) or self.mini_shift != 6:
            raise _CFBError("unsupported sector size")
        self.sector_size = 1 << self.sector_shift
        n_fat, first_dir = struct.unpack_from("<II", data, 0x2C)
        self.mini_cutoff, first_minifat, n_minifat, first_difat, n_difat = struct.unpack_from("<IIIII", data, 0x38)
        difat = list(struct.unpack_from("<109I", data, 0x4C))
        sect, per = first_difat, self.sector_size // 4 - 1
        for _ in range(n_difat):
            if sect in (_FREESECT, _ENDOFCHAIN):
                break
            vals = struct.unpack_from(f"<{per + 1}I", self._sector(sect))
            difat.extend(vals[:per])
            sect = vals[per]
        fat_sectors = [s for s in difat if s not in (_FREESECT, _ENDOFCHAIN)][:n_fat]
        per_sector = self.sector_size // 4
        self.fat: list[int] = []
        for s in fat_sectors:
            self.fat.extend(struct.unpack_from(f"<{per_sector}I", self._sector(s)))
        self.entries = self._directory(self._chain_bytes(first_dir, self.fat, self.sector_size, self._sector))
        root = self.entries.get("Root Entry")
        self.ministream = (self._chain_bytes(root[0], self.fat, self.sector_size, self._sector)[: root[1]]
                           if root else b"")
        minifat_raw = self._chain_bytes(first_minifat, self.fat, self.sector_size, self._sector) if n_minifat else b""
        self.minifat = list(struct.unpack_from(f"<{len(minifat_raw) // 4}I", minifat_raw))

    def _sector(self, sid: int) -> bytes:
        off = (sid + 1) << self.sector_shift
        if off >= len(self.data):
            raise _CFBError("sector beyond end of file (truncated?)")
        return self.data[off: off + self.sector_size]

    @staticmethod
    def _chain_bytes(start: int, table: list[int], size: int, read) -> bytes:
        out, sid, seen = [], start, 0
        while sid not in (_ENDOFCHAIN, _FREESECT):
            if sid >= len(table) or seen > len(table):
                raise _CFBError("broken sector chain")
            out.append(read(sid))
            sid, seen = table[sid], seen + 1
        return b"".join(out)

    @staticmethod
    def _directory(raw: bytes) -> dict[str, tuple[int, int]]:
        entries = {}
        for off in range(0, len(raw) - 127, 128):
            name_len = struct.unpack_from("<H", raw, off + 0x40)[0]
            kind = raw[off + 0x42]
            if kind not in (1, 2, 5) or not 2 <= name_len <= 64:
                continue
            name = raw[off: off + name_len - 2].decode("utf-16-le", errors="replace")
            start, size = struct.unpack_from("<IQ", raw, off + 0x74)
            entries.setdefault(name, (start, size))
        return entries

    def stream(self, name: str) -> bytes:
        if name not in self.entries:
            raise KeyError(name)
        start, size = self.entries[name]
        if size < self.mini_cutoff:
            mini = 1 << self.mini_shift
            data = self._chain_bytes(start, self.minifat, mini,
                                     lambda sid: self.ministream[sid * mini: (sid + 1) * mini])
        else:
            data = self._chain_bytes(start, self.fat, self.sector_size, self._sector)
        return data[:size]


def decrypt_ooxml(data: bytes, password: str | None, kind: str) -> bytes:
    """The decrypted zip package of a password-protected .pptx/.docx, or an ExtractionError."""
    legacy = {"PowerPoint": ("PowerPoint Document", ".ppt", "pptx"), "Word": ("WordDocument", ".doc", "docx")}
    try:
        cfb = CompoundFile(data)
    except (_CFBError, struct.error) as e:
        raise ExtractionError(f"broken {kind} file: damaged OLE2 container ({e})") from None
    if "EncryptedPackage" not in cfb.entries or "EncryptionInfo" not in cfb.entries:
        stream, old, new = legacy.get(kind, ("", "", ""))
        if stream and stream in cfb.entries:
            raise ExtractionError(f"legacy {kind} format ({old}) with a .{new} name; convert it to .{new}, "
                                  f"e.g. `libreoffice --headless --convert-to {new} FILE`")
        raise ExtractionError(f"not a {kind} file: an OLE2 container without an Office package")
    if not password:
        raise ExtractionError("encrypted: password required (use --password)")
    try:
        info = cfb.stream("EncryptionInfo")
        package = cfb.stream("EncryptedPackage")
    except (_CFBError, struct.error, KeyError) as e:
        raise ExtractionError(f"broken {kind} file: cannot read encrypted package ({e})") from None
    major, minor = struct.unpack_from("<HH", info, 0)
    if (major, minor) != (4, 4):
        scheme = "Standard (Office 2007)" if minor == 2 else f"version {major}.{minor}"
        raise ExtractionError(f"encrypted: {scheme} encryption is not supported; re-save the file "
                              "without a password or in a current Office version")
    try:
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes  # noqa: F401
    except ImportError:
        raise ExtractionError("encrypted: decryption needs the 'cryptography' package") from None
    try:
        return _agile_decrypt(info[8:], package, password)
    except ExtractionError:
        raise
    except Exception as e:
        raise ExtractionError(f"encrypted: cannot decrypt ({type(e).__name__}: {e})") from None


_HASHES = {"SHA1": "sha1", "SHA256": "sha256", "SHA384": "sha384", "SHA512": "sha512", "MD5": "md5"}
_BLOCK_VERIFIER_INPUT = bytes.fromhex("fea7d2763b4b9e79")
_BLOCK_VERIFIER_VALUE = bytes.fromhex("d7aa0f6d3061344e")
_BLOCK_KEY_VALUE = bytes.fromhex("146e0be7abacd0d6")


def _fit(b: bytes, n: int) -> bytes:
    return b[:n] if len(b) >= n else b + b"\x36" * (n - len(b))


def _aes_cbc_decrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    data = data[: len(data) - len(data) % 16]
    d = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    return d.update(data) + d.finalize()


def _agile_decrypt(xml: bytes, package: bytes, password: str) -> bytes:
    from lxml import etree

    root = etree.fromstring(xml)
    ns = {"e": "http://schemas.microsoft.com/office/2006/encryption",
          "p": "http://schemas.microsoft.com/office/2006/keyEncryptor/password"}
    key_data = root.find("e:keyData", ns)
    enc_key = root.find(".//p:encryptedKey", ns)
    if key_data is None or enc_key is None:
        raise ExtractionError("encrypted: no password key in the file (certificate encryption?)")
    if enc_key.get("cipherAlgorithm", "AES") != "AES" or key_data.get("cipherAlgorithm", "AES") != "AES":
        raise ExtractionError(f"encrypted: cipher {enc_key.get('cipherAlgorithm')} is not supported")

    def b64(el, attr):
        return base64.b64decode(el.get(attr))

    hname = _HASHES[enc_key.get("hashAlgorithm", "SHA1")]
    salt, spin = b64(enc_key, "saltValue"), int(enc_key.get("spinCount"))
    key_len, block = int(enc_key.get("keyBits")) // 8, int(enc_key.get("blockSize"))
    h = hashlib.new(hname, salt + password.encode("utf-16-le")).digest()
    for i in range(spin):
        h = hashlib.new(hname, struct.pack("<I", i) + h).digest()

    def derive(block_key: bytes) -> bytes:
        return _fit(hashlib.new(hname, h + block_key).digest(), key_len)

    iv = _fit(salt, block)
    verifier_input = _aes_cbc_decrypt(derive(_BLOCK_VERIFIER_INPUT), iv, b64(enc_key, "encryptedVerifierHashInput"))
    verifier_hash = _aes_cbc_decrypt(derive(_BLOCK_VERIFIER_VALUE), iv, b64(enc_key, "encryptedVerifierHashValue"))
    expected = hashlib.new(hname, verifier_input[: int(enc_key.get("saltSize"))]).digest()
    if verifier_hash[: len(expected)] != expected:
        raise ExtractionError("encrypted: wrong password")
    secret = _aes_cbc_decrypt(derive(_BLOCK_KEY_VALUE), iv, b64(enc_key, "encryptedKeyValue"))[:key_len]

    data_hash = _HASHES[key_data.get("hashAlgorithm", "SHA1")]
    data_salt, data_block = b64(key_data, "saltValue"), int(key_data.get("blockSize"))
    size = struct.unpack_from("<Q", package, 0)[0]
    out = []
    body = package[8:]
    for seg, off in enumerate(range(0, len(body), 4096)):
        seg_iv = _fit(hashlib.new(data_hash, data_salt + struct.pack("<I", seg)).digest(), data_block)
        out.append(_aes_cbc_decrypt(secret, seg_iv, body[off: off + 4096]))
    plain = b"".join(out)[:size]
    if not plain.startswith(b"PK"):
        raise ExtractionError("encrypted: decryption did not produce a valid package")
    return plain
