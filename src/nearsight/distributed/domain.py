"""One lattice over many ranks: strips of rows, halo exchange, site energies summed over owned sites.

For a local model (a site-energy model with ``on_lattice`` and a site-energy radius ``cutoff``; the BP network
and any model with ``site_energies(spins) -> [B, N]``) the periodic ``L1 x L2`` lattice is cut into strips of
whole rows along ``y``, one per rank (full periodic width in ``x``). Rank ``r`` owns rows ``y0 .. y1-1`` and
evaluates the model on an auxiliary periodic *patch* lattice ``L1 x (rows + 2 h)``: its own rows with ``h`` halo
rows on each side, ``h`` the largest ``|n2|`` of any offset within ``cutoff`` (real distances: on the
triangular lattice rows are ``sqrt(3)/2`` apart, so ``h`` can exceed ``cutoff``). Then

    E_r = sum_{i owned} eps_i(patch),   E = all_reduce(E_r),   g = dE_r / dS_patch     (autograd)
    h_i = -( g_i from the owner + sum over ranks holding i as a halo copy of their g on that copy )

which is ``-dE/dS_i`` exactly: every site energy is computed once (by its owner), and it sees the same spins as
on the full lattice because the disk of radius ``cutoff`` around an owned site spans rows ``r-h .. r+h``, all
inside the patch, so the patch's own periodic wrap in ``y`` never enters an owned site's energy (checked at
construction; in ``x`` the patch has the full lattice's width and wrap). Halo rows travel by point-to-point
``isend``/``irecv`` (``torch.distributed.batch_isend_irecv``), the halo gradients back the same way (reverse
halo exchange); a strip thinner than ``h`` just fetches its halo from several ranks. Volume per evaluation and
direction: ``2 h L1`` spins per rank, independent of the strip height.

The provider is a :class:`FieldProvider` on the rank's *owned* sites (its ``lattice`` is the :class:`OwnedRows`
strip: ``N`` = owned sites), so the package's integrators run on it unchanged; each call is collective (every
rank must call it, in the same order). With one rank and no process group it is an ordinary provider whose
patch is the lattice plus duplicated halo rows, a useful check of the construction.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from ..fields import FieldProvider, FieldResult
from ..errors import NearsightError
from ..lattice import Lattice
from .env import DistEnv, all_sum, env_of_group, gather_blocks, split_evenly


def halo_rows(lattice: Lattice, cutoff: float) -> int:
    """Rows of halo needed for site energies of radius ``cutoff``: the largest ``|n2|`` of an offset within it."""
    o, _ = lattice.offsets_within(float(cutoff))
    return int(np.abs(o[:, 1]).max()) if len(o) else 0


@dataclass(frozen=True)
class OwnedRows:
    """The sites a rank owns: rows ``y0 .. y1-1`` of ``lattice`` (global site ``x + L1*y``, local ``x + L1*(y-y0)``).
    Has the attributes a provider's ``lattice`` needs (``kind``, ``L1``, ``N``); ``L2`` is the strip's rows."""

    lattice: Lattice
    y0: int
    y1: int

    @property
    def kind(self) -> str:
        return self.lattice.kind

    @property
    def L1(self) -> int:
        return self.lattice.L1

    @property
    def L2(self) -> int:
        return self.y1 - self.y0

    @property
    def N(self) -> int:
        return self.lattice.L1 * (self.y1 - self.y0)

    @property
    def sites(self) -> slice:
        """The owned sites as a slice of global site indices."""
        return slice(self.y0 * self.lattice.L1, self.y1 * self.lattice.L1)


class StripPartition:
    """Rows of an ``L1 x L2`` lattice over ``world`` ranks (the first ``L2 % world`` ranks take one more row) and,
    for a halo of ``h`` rows, which rows every rank's patch holds and who owns them."""

    def __init__(self, lattice: Lattice, world: int, h: int):
        if world > lattice.L2:
            raise NearsightError(f"{world} ranks cannot share the {lattice.L2} rows of {lattice!r} (one row per "
                                 f"rank at least); use at most {lattice.L2} processes or a taller lattice")
        self.lattice, self.world, self.h = lattice, int(world), int(h)
        self.rows = split_evenly(lattice.L2, world)
        self.starts = np.concatenate([[0], np.cumsum(self.rows)]).astype(int)
        self.owner = np.repeat(np.arange(world), self.rows)                     # owner of each global row

    def owned(self, rank: int) -> OwnedRows:
        return OwnedRows(self.lattice, int(self.starts[rank]), int(self.starts[rank + 1]))

    def patch_rows(self, rank: int) -> np.ndarray:
        """Global row of each patch row of ``rank`` (``rows + 2h`` of them, bottom halo first)."""
        y0, y1 = self.starts[rank], self.starts[rank + 1]
        return np.arange(y0 - self.h, y1 + self.h) % self.lattice.L2

    def plan(self, rank: int) -> dict:
        """For ``rank``: ``local`` (patch rows filled from own rows, and those rows), ``recv[q]`` (patch rows
        filled by peer ``q``, in message order), ``send[q]`` (own local rows peer ``q`` needs, in its order)."""
        y0 = self.starts[rank]
        mine = self.patch_rows(rank)
        own_of = self.owner[mine]
        plan = {"local": (np.flatnonzero(own_of == rank), mine[own_of == rank] - y0), "recv": {}, "send": {}}
        for q in range(self.world):
            if q == rank:
                continue
            k = np.flatnonzero(own_of == q)
            if len(k):
                plan["recv"][q] = k
            theirs = self.patch_rows(q)
            rows = theirs[self.owner[theirs] == rank]
            if len(rows):
                plan["send"][q] = rows - y0
        return plan


def _as_index(a, device) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.int64), device=device)


class DomainDecomposedProvider(FieldProvider):
    """A local ML model evaluated on strips of the lattice, one per rank (see the module docstring).

    ``model``: a :class:`~nearsight.ml.network.SiteEnergyModel` (or any module with ``on_lattice``, ``cutoff``,
    ``dtype`` and ``site_energies``), or a shipped model's name / a ``.pt`` path. ``env``: the process group's
    :class:`DistEnv` (default: the initialized default group, or a single process). ``site_chunk``: how many
    owned sites have their features alive at once (memory on large strips; results do not depend on it).
    """

    name = "ml-dd"

    def __init__(self, model, lattice: Lattice, *, env: DistEnv | None = None, device: str | None = None,
                 site_chunk: int = 16384):
        if isinstance(model, str):
            from ..ml.cards import load_model
            model = load_model(model, lattice)
        for attr in ("on_lattice", "cutoff"):
            if not hasattr(model, attr):
                raise NearsightError(f"domain decomposition needs a local model with {attr!r} (a site-energy "
                                     f"model such as the BP network); {type(model).__name__} has none")
        self.env = env or env_of_group(device)
        self._device = torch.device(device) if device is not None else self.env.device
        self.global_lattice = lattice
        self.cutoff = float(model.cutoff)
        lattice.check_cutoff(self.cutoff)
        self.h = halo_rows(lattice, self.cutoff)
        self.partition = StripPartition(lattice, self.env.world, self.h)
        self.lattice = self.partition.owned(self.env.rank)
        self.patch = Lattice(lattice.kind, lattice.L1, self.lattice.L2 + 2 * self.h)
        self._check_patch()
        self.model = model.on_lattice(self.patch).to(self._device)
        self.model.requires_grad_(False)
        self.card = getattr(self.model, "card", {})
        self.site_chunk = max(1, int(site_chunk))
        p = self.partition.plan(self.env.rank)
        self._local = tuple(_as_index(a, self._device) for a in p["local"])
        self._recv = {q: _as_index(k, self._device) for q, k in p["recv"].items()}
        self._send = {q: _as_index(k, self._device) for q, k in p["send"].items()}
        self.comm_seconds, self.compute_seconds, self.calls = 0.0, 0.0, 0

    # --------------------------------------------------------------------------------------- geometry
    def _check_patch(self) -> None:
        """No owned site's disk of radius ``cutoff`` may reach the patch's own periodic wrap in ``y``."""
        o, _ = self.global_lattice.offsets_within(self.cutoff)
        P, rows = self.patch.L2, self.lattice.L2
        lo, hi = self.h + o[:, 1].min(), self.h + rows - 1 + o[:, 1].max()
        if lo < 0 or hi >= P:
            raise NearsightError(f"internal: halo of {self.h} rows does not hold the cutoff {self.cutoff:g}")
        self.patch.check_cutoff(self.cutoff)

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype

    @property
    def field_radius(self) -> float:
        return 2.0 * self.cutoff

    def halo_sites(self) -> int:
        """Spins received (and gradients sent back) per configuration per evaluation by this rank."""
        return sum(len(k) for k in self._recv.values()) * self.global_lattice.L1

    def scatter(self, spins):
        """This rank's owned part ``[..., N_owned, 3]`` of full-lattice spins ``[..., N, 3]``."""
        return spins[..., self.lattice.sites, :]

    def gather(self, local: torch.Tensor, dst: int = 0) -> torch.Tensor | None:
        """The full-lattice ``[B, N, ...]`` from every rank's owned ``[B, N_owned, ...]`` on rank ``dst``."""
        sizes = [self.partition.owned(r).N for r in range(self.env.world)]
        return gather_blocks(self.env, local, sizes, dim=1, dst=dst)

    # --------------------------------------------------------------------------------------- exchange
    def _timed(self, fn, *args):
        if self._device.type == "cuda":
            torch.cuda.synchronize(self._device)
        t0 = time.perf_counter()
        out = fn(*args)
        if self._device.type == "cuda":
            torch.cuda.synchronize(self._device)
        return out, time.perf_counter() - t0

    def _p2p(self, outgoing: dict, incoming_shapes: dict, like: torch.Tensor) -> dict:
        """Send ``outgoing[q]`` to each peer and receive a tensor of ``incoming_shapes[q]`` from each."""
        if not self.env.distributed:
            return {}
        cdev = self.env.comm_device
        bufs = {q: torch.empty(shape, dtype=like.dtype, device=cdev) for q, shape in incoming_shapes.items()}
        ops = [dist.P2POp(dist.isend, t.to(cdev).contiguous(), q) for q, t in outgoing.items()]
        ops += [dist.P2POp(dist.irecv, b, q) for q, b in bufs.items()]
        if ops:
            for w in dist.batch_isend_irecv(ops):
                w.wait()
        return {q: b.to(like.device) for q, b in bufs.items()}

    def exchange_halo(self, own: torch.Tensor) -> torch.Tensor:
        """Owned spins ``[B, rows, L1, 3]`` -> patch spins ``[B, rows + 2h, L1, 3]``."""
        B, _, L1, _ = own.shape
        patch = own.new_empty(B, self.patch.L2, L1, 3)
        k, rows = self._local
        patch[:, k] = own[:, rows]
        got = self._p2p({q: own[:, r] for q, r in self._send.items()},
                        {q: (B, len(k), L1, 3) for q, k in self._recv.items()}, own)
        for q, t in got.items():
            patch[:, self._recv[q]] = t
        return patch

    def reverse_halo(self, grad_patch: torch.Tensor) -> torch.Tensor:
        """Patch gradients ``[B, rows + 2h, L1, 3]`` -> owned gradients ``[B, rows, L1, 3]``: each copy's gradient
        added to its owner's site (the rank's own copies first, then the peers' in rank order)."""
        B, _, L1, _ = grad_patch.shape
        out = grad_patch.new_zeros(B, self.lattice.L2, L1, 3)
        k, rows = self._local
        out.index_add_(1, rows, grad_patch[:, k])
        got = self._p2p({q: grad_patch[:, k] for q, k in self._recv.items()},
                        {q: (B, len(r), L1, 3) for q, r in self._send.items()}, grad_patch)
        for q in sorted(got):
            out.index_add_(1, self._send[q], got[q])
        return out

    # --------------------------------------------------------------------------------------- fields
    def _owned_energy_and_grad(self, patch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``sum_{i owned} eps_i`` (float64, ``[B]``) and its gradient w.r.t. every patch spin ``[B, P*L1, 3]``."""
        L1, h, rows = self.patch.L1, self.h, self.lattice.L2
        first, last = h * L1, (h + rows) * L1
        m = self.model
        with torch.enable_grad():
            s = patch.detach().requires_grad_(True)
            if hasattr(m, "descriptor") and hasattr(m.descriptor, "lattice_terms"):
                return self._bp_owned(s, first, last)
            eps = m.site_energies(s)[:, first:last]
            energy = eps.to(torch.float64).sum(-1)
            (grad,) = torch.autograd.grad(eps.sum(), s)
        return energy.detach(), grad.detach()

    def _bp_owned(self, s: torch.Tensor, first: int, last: int):
        """The BP network's owned-site energy in site chunks (as :func:`energy_and_fields_by_sites`, owned only)."""
        desc, head = self.model.descriptor, self.model.head
        flat, blocks = desc.lattice_terms(s)
        f_d, b_d = flat.detach().requires_grad_(True), blocks.detach().requires_grad_(True)
        g_f, g_b = torch.zeros_like(f_d), torch.zeros_like(b_d)
        positions = desc.feature_positions(s.device)
        energy = torch.zeros(s.shape[0], dtype=torch.float64, device=s.device)
        for start in range(first, last, self.site_chunk):
            x = desc.site_features(f_d, b_d, slice(start, min(last, start + self.site_chunk)), ordered=False)
            fl = head.fluctuation(x, positions)
            a, b = torch.autograd.grad(fl.sum(), [f_d, b_d])
            g_f += a
            g_b += b
            energy += fl.detach().to(torch.float64).sum(-1)
        (grad,) = torch.autograd.grad([flat, blocks], s, grad_outputs=[g_f, g_b])
        return energy + (last - first) * head.e_ref.to(torch.float64), grad.detach()

    def _compute(self, spins: torch.Tensor) -> FieldResult:
        B, L1 = spins.shape[0], self.patch.L1
        own = spins.to(self.model.dtype).view(B, self.lattice.L2, L1, 3)
        patch, t_a = self._timed(self.exchange_halo, own)
        (e_own, grad), t_b = self._timed(self._owned_energy_and_grad, patch.reshape(B, -1, 3))
        g_own, t_c = self._timed(self.reverse_halo, grad.view(B, self.patch.L2, L1, 3))
        energy, t_d = self._timed(all_sum, self.env, e_own)
        self.comm_seconds += t_a + t_c + t_d
        self.compute_seconds += t_b
        self.calls += 1
        fields = -g_own.reshape(B, self.lattice.N, 3)
        return FieldResult(energy.to(torch.float64), fields.to(torch.float64))

    def describe(self) -> dict:
        from ..ml.cards import physics_of
        lat = self.global_lattice
        phys = {k: v for k, v in physics_of(self.card).items() if v is not None} if self.card else {}
        return {"provider": self.name, "lattice": lat.kind, "L1": lat.L1, "L2": lat.L2, **phys,
                "model": self.card.get("name"), "model_path": self.card.get("path"), "cutoff": self.cutoff,
                "model_dtype": str(self.model.dtype).replace("torch.", ""), "decomposition": "strips along y",
                "halo_rows": self.h}       # not the number of ranks: a run may resume on another number
