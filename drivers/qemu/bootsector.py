"""A 512-byte real-mode boot sector that prints a message on COM1 and halts.

Used for the ``demo`` image novalite registers on first start (:func:`demo_image`,
the qemu, kvm and fake drivers' :meth:`~novalite.virt.Driver.demo_image`) and for
tests: it boots in ~0.1 s under TCG and a few seconds under nested KVM. Importing
this module has no side effects.
"""

from __future__ import annotations

from novalite.virt.driver import DemoImage

#: What the ``demo`` image prints on COM1.
DEMO_MESSAGE = "novalite demo guest: hello from a real-mode boot sector"

_LOAD_ADDRESS = 0x7C00
# Hand-assembled 16-bit code (offsets in comments):
_CODE_HEAD = bytes(
    [
        0xFA,  # 0  cli
        0x31, 0xC0,  # 1  xor ax, ax
        0x8E, 0xD8,  # 3  mov ds, ax
        0xFC,  # 5  cld
        0xBE,  # 6  mov si, imm16 (message address, appended below)
    ]
)
_CODE_TAIL = bytes(
    [
        0xBA, 0xF8, 0x03,  # 9  mov dx, 0x3f8 (COM1 data port)
        0xAC,  # 12 loop: lodsb
        0x84, 0xC0,  # 13 test al, al
        0x74, 0x03,  # 15 jz done
        0xEE,  # 17 out dx, al
        0xEB, 0xF8,  # 18 jmp loop
        0xF4,  # 20 done: hlt
        0xEB, 0xFD,  # 21 jmp done
    ]
)
_CODE_LEN = len(_CODE_HEAD) + 2 + len(_CODE_TAIL)
#: The longest message that fits (room for CR LF, the terminating NUL and 0x55AA).
MAX_MESSAGE = 510 - _CODE_LEN - 3


def make_boot_sector(message: str) -> bytes:
    """Return a 512-byte MBR boot sector that writes ``message`` + CRLF to COM1, then halts.

    ``message`` must be ASCII without NUL and at most :data:`MAX_MESSAGE` bytes.
    It boots on ``-M pc`` (IDE) as a raw disk; on q35/microvm pad it to 1 MiB.

    Example::

        open("demo.img", "wb").write(make_boot_sector("hello from novalite"))
    """
    text = message.encode("ascii")
    if b"\0" in text:
        raise ValueError("boot sector message must not contain NUL")
    if len(text) > MAX_MESSAGE:
        raise ValueError(f"boot sector message longer than {MAX_MESSAGE} bytes")
    address = _LOAD_ADDRESS + _CODE_LEN
    code = _CODE_HEAD + address.to_bytes(2, "little") + _CODE_TAIL
    body = code + text + b"\r\n\0"
    return body + bytes(510 - len(body)) + b"\x55\xaa"


def demo_image() -> DemoImage:
    """The ``demo`` image: a boot sector printing :data:`DEMO_MESSAGE`, as a raw disk."""
    return DemoImage("raw", "bare", data=make_boot_sector(DEMO_MESSAGE),
                     properties={"description": "512-byte real-mode boot sector that "
                                                "prints to COM1"})
