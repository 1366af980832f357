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


#: Where a :func:`make_boot_sector` sector keeps its message.
MESSAGE_OFFSET = _CODE_LEN


def make_rescue_boot_sector(message: str) -> bytes:
    """A boot sector for rescue tests: it writes ``message`` + CRLF to COM1, then reads
    the first sector of the second BIOS disk (drive 0x81, the rescued guest's own disk)
    and writes the message of the :func:`make_boot_sector` sector found there, then
    halts. So the console shows both that the rescue image booted and that the old
    disk is readable.

    Example::

        open("rescue.img", "wb").write(make_rescue_boot_sector("RESCUE"))
    """
    text = message.encode("ascii")
    if b"\0" in text:
        raise ValueError("boot sector message must not contain NUL")
    head = bytes([
        0xFA,  # cli
        0x31, 0xC0,  # xor ax, ax
        0x8E, 0xD8,  # mov ds, ax
        0x8E, 0xC0,  # mov es, ax
        0x8E, 0xD0,  # mov ss, ax
        0xBC, 0x00, 0x7C,  # mov sp, 0x7c00
        0xFB,  # sti
        0xFC,  # cld
    ])
    # then: mov si, msg; call print; (disk read); mov si, 0x8000+off; call print; halt
    read = bytes([
        0xB8, 0x01, 0x02,  # mov ax, 0x0201 (read one sector)
        0xB9, 0x01, 0x00,  # mov cx, 0x0001 (cylinder 0, sector 1)
        0xBA, 0x81, 0x00,  # mov dx, 0x0081 (head 0, drive 0x81)
        0xBB, 0x00, 0x80,  # mov bx, 0x8000 (es:bx, the buffer)
        0xCD, 0x13,  # int 0x13
    ])
    halt = bytes([0xF4, 0xEB, 0xFD])  # hlt; jmp hlt
    printer = bytes([
        0xBA, 0xF8, 0x03,  # mov dx, 0x3f8
        0xAC,  # lodsb
        0x84, 0xC0,  # test al, al
        0x74, 0x03,  # jz ret
        0xEE,  # out dx, al
        0xEB, 0xF8,  # jmp lodsb
        0xC3,  # ret
    ])
    # layout: head | mov si(3) | call(3) | read | mov si(3) | call(3) | halt | printer | text
    printer_at = len(head) + 6 + len(read) + 6 + len(halt)
    text_at = printer_at + len(printer)

    def call_from(end: int) -> bytes:  # call rel16, relative to the next instruction
        return bytes([0xE8]) + (printer_at - end).to_bytes(2, "little", signed=True)

    code = head + bytes([0xBE]) + (_LOAD_ADDRESS + text_at).to_bytes(2, "little")
    code += call_from(len(code) + 3)
    code += read + bytes([0xBE]) + (0x8000 + MESSAGE_OFFSET).to_bytes(2, "little")
    code += call_from(len(code) + 3)
    code += halt + printer
    assert len(code) == text_at
    body = code + text + b"\r\n\0"
    if len(body) > 510:
        raise ValueError("boot sector message too long")
    return body + bytes(510 - len(body)) + b"\x55\xaa"


#: The counter's 16-bit code (assembled; offsets in comments): it prints a banner once,
#: then "<prefix><n>" CR LF with n = 1, 2, 3, ... about four times a second (four
#: ``hlt`` waits for the BIOS's 18.2 Hz timer between lines). n lives in the guest's
#: memory (0x600), so a live-migrated guest goes on counting where it was.
_COUNTER_CODE = bytes.fromhex(
    "fa31c08ed88ed0bc007cfbfc"  # 00 cli; ds = ss = 0; sp = 0x7c00; sti; cld
    "c70600060000"              # 0c mov word [0x600], 0
    "be0000e81e00"              # 12 mov si, banner (patched); call print
    "ff060006"                  # 18 next: inc word [0x600]
    "be0000e81400"              # 1c mov si, prefix (patched); call print
    "a10006e81a00"              # 22 mov ax, [0x600]; call printdec
    "be5b7ce80800"              # 28 mov si, crlf; call print
    "b90400f4e2fdebe2"          # 2e mov cx, 4; wait: hlt; loop wait; jmp next
    "baf803ac84c07403eeebf8c3"  # 36 print: dx = COM1; lodsb/out until NUL; ret
    "bb0a0031c931d2f7f352"      # 42 printdec: bx = 10; cx = 0; d1: dx = 0; div bx;
    "4185c075f6"                #    push dx; inc cx; until ax == 0
    "baf8035804 30eee2fac3"     # 51 dx = COM1; d2: pop ax; add al, '0'; out; loop d2; ret
    .replace(" ", "")
    + "0d0a00"                  # 5b crlf
)
_BANNER_PATCH, _PREFIX_PATCH = 0x13, 0x1D


def make_counter_boot_sector(banner: str, prefix: str) -> bytes:
    """A boot sector for live migration tests: ``banner`` + CRLF once on COM1 (a
    second banner means the guest booted again), then ``prefix`` + 1, ``prefix`` + 2,
    ... one per line, about four a second, for 65535 lines.

    Example::

        open("count.img", "wb").write(make_counter_boot_sector("BOOTED", "TICK "))
    """
    head = bytearray(_COUNTER_CODE)
    texts = banner.encode("ascii") + b"\r\n\0", prefix.encode("ascii") + b"\0"
    if any(b"\0" in t[:-1] for t in texts):
        raise ValueError("boot sector texts must not contain NUL")
    banner_at = _LOAD_ADDRESS + len(head)
    head[_BANNER_PATCH:_BANNER_PATCH + 2] = banner_at.to_bytes(2, "little")
    head[_PREFIX_PATCH:_PREFIX_PATCH + 2] = (banner_at + len(texts[0])).to_bytes(2,
                                                                                 "little")
    body = bytes(head) + texts[0] + texts[1]
    if len(body) > 510:
        raise ValueError("boot sector texts too long")
    return body + bytes(510 - len(body)) + b"\x55\xaa"


def demo_image() -> DemoImage:
    """The ``demo`` image: a boot sector printing :data:`DEMO_MESSAGE`, as a raw disk."""
    return DemoImage("raw", "bare", data=make_boot_sector(DEMO_MESSAGE),
                     properties={"description": "512-byte real-mode boot sector that "
                                                "prints to COM1"})
