"""Spin textures for other codes: OVF 2.0 (OOMMF, mumax3, Spirit, Sunny) and legacy VTK (ParaView).

OVF 2.0 (the OOMMF vector field format, https://math.nist.gov/oommf/doc/userguide20a3/userguide/Data_block.html):
one segment, ``meshtype: rectangular`` with ``xnodes = L1``, ``ynodes = L2``, ``znodes = 1`` and unit steps,
``valuedim: 3``; data in ``Text``, ``Binary 4`` or ``Binary 8`` (little-endian, preceded by the check values
1234567.0 / 123456789012345.0), x fastest then y — the site order ``i = x + L1*y`` of this package. A rectangular
OVF mesh is the *index grid*: for the triangular lattice the ``Desc`` line says so and gives the primitive
vectors (Spirit and Sunny take the geometry from their own input; the values map one-to-one to sites).

VTK legacy (``# vtk DataFile Version 3.0``): ``POLYDATA`` with the Cartesian site positions (z = 0), one vertex
cell per site, the spins as ``VECTORS spins`` and any extra site scalars (e.g. the chirality) as ``SCALARS``;
``ASCII`` or ``BINARY`` (big-endian float64, as the legacy format requires).
"""
from __future__ import annotations

import re

import numpy as np

from ..errors import NearsightError
from ..io import atomic_path
from ..lattice import Lattice

_CHECK = {4: (np.float32(1234567.0), "<f4"), 8: (np.float64(123456789012345.0), "<f8")}


def _spins(spins, lattice: Lattice) -> np.ndarray:
    s = np.asarray(spins, dtype=np.float64)
    if s.shape != (lattice.N, 3):
        raise NearsightError(f"spins for export must have shape [{lattice.N}, 3] (one configuration of {lattice!r}), "
                             f"got {s.shape}")
    return s


def write_ovf(path: str, spins, lattice: Lattice, *, fmt: str = "text", title: str = "nearsight spins",
              desc: str = "") -> str:
    """Write one configuration as OVF 2.0; ``fmt`` is ``text``, ``binary4`` or ``binary8``."""
    s = _spins(spins, lattice)
    if fmt not in ("text", "binary4", "binary8"):
        raise NearsightError(f"OVF data format must be text, binary4 or binary8, got {fmt!r}")
    geo = (f"{lattice.kind} lattice {lattice.L1}x{lattice.L2}, site i = x + L1*y; primitive vectors a1 = "
           f"({lattice.a[0, 0]:g}, {lattice.a[0, 1]:g}), a2 = ({lattice.a[1, 0]:g}, {lattice.a[1, 1]:g}); the mesh "
           f"is the index grid")
    head = ["# OOMMF OVF 2.0", "#", "# Segment count: 1", "#", "# Begin: Segment", "# Begin: Header", "#",
            f"# Title: {title}", f"# Desc: {geo}"]
    head += [f"# Desc: {line}" for line in str(desc).splitlines() if line.strip()]
    head += ["# meshunit: 1", "# meshtype: rectangular", "# xbase: 0.5", "# ybase: 0.5", "# zbase: 0.5",
             "# xstepsize: 1", "# ystepsize: 1", "# zstepsize: 1", f"# xnodes: {lattice.L1}",
             f"# ynodes: {lattice.L2}", "# znodes: 1", "# xmin: 0", "# ymin: 0", "# zmin: 0",
             f"# xmax: {lattice.L1}", f"# ymax: {lattice.L2}", "# zmax: 1", "# valuedim: 3",
             "# valuelabels: m_x m_y m_z", "# valueunits: 1 1 1", "#", "# End: Header", "#"]
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(("\n".join(head) + "\n").encode())
        if fmt == "text":
            fh.write(b"# Begin: Data Text\n")
            np.savetxt(fh, s, fmt="%.17g")
            fh.write(b"# End: Data Text\n")
        else:
            n = int(fmt[-1])
            check, dt = _CHECK[n]
            fh.write(f"# Begin: Data Binary {n}\n".encode())
            fh.write(np.asarray([check], dtype=dt).tobytes())
            fh.write(s.astype(dt).tobytes())
            fh.write(f"\n# End: Data Binary {n}\n".encode())
        fh.write(b"# End: Segment\n")
    return path


def read_ovf(path: str) -> tuple[np.ndarray, dict]:
    """Read a one-segment OVF 2.0 file (text or binary): ``(values [znodes*ynodes*xnodes, valuedim], header)``."""
    with open(path, "rb") as fh:
        raw = fh.read()
    if not raw.startswith(b"# OOMMF OVF 2"):
        raise NearsightError(f"{path!r} is not an OVF 2.0 file (first line {raw[:30]!r})")
    m = re.search(rb"#\s*Begin:\s*Data\s+(Text|Binary\s+([48]))\s*\n", raw, re.IGNORECASE)
    if m is None:
        raise NearsightError(f"{path!r} has no '# Begin: Data' line")
    header = {}
    for line in raw[:m.start()].decode().splitlines():
        kv = re.match(r"#\s*([A-Za-z ]+?):\s*(.*)$", line)
        if kv:
            k = kv.group(1).strip().lower()
            header[k] = header[k] + "\n" + kv.group(2).strip() if k == "desc" and k in header else kv.group(2).strip()
    try:
        n = int(header["xnodes"]) * int(header["ynodes"]) * int(header["znodes"])
        dim = int(header.get("valuedim", 3))
    except KeyError as exc:
        raise NearsightError(f"{path!r} lacks the header field {exc.args[0]!r}") from None
    body = raw[m.end():]
    if m.group(2) is None:
        end = re.search(rb"#\s*End:\s*Data", body, re.IGNORECASE)
        vals = np.array(body[:end.start() if end else None].split(), dtype=np.float64)
    else:
        size = int(m.group(2))
        check, dt = _CHECK[size]
        if np.frombuffer(body[:size], dtype=dt)[0] != check:
            raise NearsightError(f"{path!r}: binary check value mismatch (not little-endian OVF 2.0 data)")
        vals = np.frombuffer(body[size:size + size * n * dim], dtype=dt).astype(np.float64)
    if vals.size != n * dim:
        raise NearsightError(f"{path!r} holds {vals.size} numbers; its header promises {n} x {dim}")
    return vals.reshape(n, dim), header


def write_vtk(path: str, spins, lattice: Lattice, *, scalars: dict | None = None, binary: bool = False,
              title: str = "nearsight spins") -> str:
    """Write one configuration as a legacy VTK POLYDATA file (positions, vertex cells, spin vectors, scalars)."""
    s = _spins(spins, lattice)
    pts = np.column_stack([lattice.positions, np.zeros(lattice.N)])
    N = lattice.N
    scalars = {k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in (scalars or {}).items()}
    for k, v in scalars.items():
        if v.shape != (N,) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k):
            raise NearsightError(f"VTK scalar {k!r} must be named with letters/digits/_ and have {N} values")

    def block(fh, arr, dtype="f8"):
        if binary:
            fh.write(np.ascontiguousarray(arr).astype(">" + dtype).tobytes())
            fh.write(b"\n")
        else:
            np.savetxt(fh, np.atleast_2d(arr) if np.ndim(arr) > 1 else np.asarray(arr)[:, None],
                       fmt="%.17g" if dtype == "f8" else "%d")

    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(f"# vtk DataFile Version 3.0\n{title[:255]}\n{'BINARY' if binary else 'ASCII'}\n"
                 f"DATASET POLYDATA\nPOINTS {N} double\n".encode())
        block(fh, pts)
        fh.write(f"VERTICES {N} {2 * N}\n".encode())
        block(fh, np.column_stack([np.ones(N, np.int64), np.arange(N)]), "i4")
        fh.write(f"POINT_DATA {N}\nVECTORS spins double\n".encode())
        block(fh, s)
        for k, v in scalars.items():
            fh.write(f"SCALARS {k} double 1\nLOOKUP_TABLE default\n".encode())
            block(fh, v)
    return path
