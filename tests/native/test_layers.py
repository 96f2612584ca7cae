"""The engine's C files depend on each other one way (docs/architecture.md).

Each native/*.c is compiled to an object file on its own (no LTO, so
every call into another file stays an undefined symbol); ``nm`` gives
what each object defines and what it uses. A file *uses* another when one
of its undefined symbols is defined there. The test fails

* when the files use each other in a circle (the cycle is named), and
* when a file uses one in a higher layer (calls from a lower layer to an
  upper one go through the observer table or a function pointer, which
  ``nm`` does not see, by design).

A new file must be given a layer in LAYERS.
"""

from __future__ import annotations

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NATIVE = ROOT / "native"

#: layer of each file, lowest first; a file may use files of its own
#: layer or of lower ones, never of a higher one.
LAYERS: dict[str, int] = {
    # 0: pure helpers and parsing, no state
    "names": 0,
    "packet": 0,
    "linktypes": 0,
    "decap": 0,  # mosfw_parse: the link layer, then tags and tunnels
    "dgram": 0,  # mosfw_parse_dgram: the UDP/ICMP flow key (after Zeek)
    # 1: the flow table (canonical key, symmetric hash); IP fragment
    #    reassembly (a per-core table of datagrams, uses nothing)
    "flow_table": 1,
    "ipfrag": 1,
    # 2: input; the -c N reader (feed) parses each packet and hashes its
    #    key (flow_table) to pick the core that owns it, and feeds the
    #    cores' rings (source_ring)
    "map_guard": 2,
    "source": 2,
    "source_live": 2,
    "source_set": 2,
    "source_ring": 2,
    "feed": 2,
    # 3: both endpoints' TCP state machines
    "tcp_state": 3,
    # 4: the event ring (event_ring.h; header only today)
    "event_ring": 4,
    # 5: features, attached as observers: they may push records
    "stream_mem": 5,
    "stream_buf": 5,
    "stream_read": 5,
    "timers": 5,
    "filters": 5,
    "pkt_arena": 5,
    # 6: the hub that attaches the features to a core's observer table
    "feature_set": 6,
    # 7: the core on top: the loop, its construction, the public API
    "core": 7,
    "core_loop": 7,
    "core_end": 7,
    "core_dgram": 7,
    "core_api": 7,
    "tunnels": 7,  # per-flow layer records and their core API
}

TRACKER_NATIVE = ROOT / "samples" / "tracker" / "native"


def _compile(src: Path, out: Path) -> Path:
    return _compile_with(src, out, [])


def _compile_with(src: Path, out: Path, include: list[Path]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    obj = out / (src.stem + ".o")
    cmd = [
        "gcc",
        "-std=gnu11",
        "-O1",
        "-fno-lto",
        f"-I{NATIVE}",
        *(f"-I{d}" for d in include),
        "-c",
        str(src),
        "-o",
        str(obj),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stderr}"
    return obj


def _symbols(obj: Path) -> tuple[set[str], set[str]]:
    out = subprocess.run(["nm", "-P", str(obj)], capture_output=True, text=True, check=True).stdout
    defined, undefined = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        name, kind = parts[0], parts[1]
        if kind == "U":
            undefined.add(name)
        elif kind in "TDBRCGSVW":  # global definitions (upper case = external)
            defined.add(name)
    return defined, undefined


def compile_engine(out: Path) -> list[Path]:
    """Every native/*.c compiled to an object in out."""
    sources = sorted(NATIVE.glob("*.c"))
    with ThreadPoolExecutor(max_workers=2) as ex:
        return list(ex.map(lambda s: _compile(s, out), sources))


def dependency_graph(out: Path, objs: list[Path] | None = None) -> dict[str, dict[str, set[str]]]:
    """file stem -> {used file stem -> the symbols it uses there} (objs:
    the engine's objects, compiled into out when not given)."""
    if objs is None:
        objs = compile_engine(out)
    defs, undefs = {}, {}
    for obj in objs:
        defs[obj.stem], undefs[obj.stem] = _symbols(obj)
    owner = {}
    for stem, names in defs.items():
        for n in names:
            owner[n] = stem
    graph: dict[str, dict[str, set[str]]] = {stem: {} for stem in defs}
    for stem, names in undefs.items():
        for n in names:
            o = owner.get(n)
            if o is not None and o != stem:
                graph[stem].setdefault(o, set()).add(n)
    return graph


def find_cycles(graph: dict[str, dict[str, set[str]]]) -> list[list[str]]:
    """The strongly connected components of more than one file (Tarjan),
    each as one cycle through them (a path that comes back)."""
    index, low, stack, on, sccs = {}, {}, [], set(), []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    cycles = []
    for comp in sccs:
        members = set(comp)
        # walk from the first file until a file repeats: one named cycle
        path, seen = [comp[0]], {comp[0]: 0}
        while True:
            nxt = sorted(w for w in graph[path[-1]] if w in members)[0]
            if nxt in seen:
                cycles.append(path[seen[nxt] :] + [nxt])
                break
            seen[nxt] = len(path)
            path.append(nxt)
    return cycles


def describe(graph, cycle: list[str]) -> str:
    """The cycle, then every use between the files of its component."""
    members = set(cycle)
    for v in list(graph):  # the whole strongly connected component
        if v not in members and _reaches(graph, v, cycle[0]) and _reaches(graph, cycle[0], v):
            members.add(v)
    steps = [
        f"{a}.c uses {b}.c ({', '.join(sorted(graph[a][b])[:3])})"
        for a in sorted(members)
        for b in sorted(graph[a])
        if b in members
    ]
    return " -> ".join(cycle) + f" (in a circle: {', '.join(sorted(members))}):\n    " + "\n    ".join(steps)


def _reaches(graph, a: str, b: str) -> bool:
    todo, seen = [a], {a}
    while todo:
        v = todo.pop()
        if v == b:
            return True
        for w in graph[v]:
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return False


needs_tools = pytest.mark.skipif(
    not (shutil.which("gcc") and shutil.which("nm")), reason="gcc and nm are needed"
)


@pytest.fixture(scope="module")
def engine_objs(tmp_path_factory) -> list[Path]:
    """The engine's objects, compiled once for the graph and the tracker test."""
    return compile_engine(tmp_path_factory.mktemp("objs"))


@pytest.fixture(scope="module")
def graph(tmp_path_factory, engine_objs):
    return dependency_graph(tmp_path_factory.mktemp("graph"), engine_objs)


@needs_tools
def test_no_two_c_files_use_each_other_in_a_circle(graph):
    cycles = find_cycles(graph)
    assert not cycles, "C files that use each other's symbols in a circle:\n  " + "\n  ".join(
        describe(graph, c) for c in cycles
    )


@needs_tools
def test_every_c_file_has_a_layer(graph):
    missing = sorted(set(graph) - set(LAYERS))
    assert not missing, f"give these native files a layer in LAYERS (tests/native/test_layers.py): {missing}"


@needs_tools
def test_layers_depend_downward_only(graph):
    bad = []
    for a, uses in sorted(graph.items()):
        for b, names in sorted(uses.items()):
            if a in LAYERS and b in LAYERS and LAYERS[b] > LAYERS[a]:
                bad.append(f"{a}.c (layer {LAYERS[a]}) uses {b}.c (layer {LAYERS[b]}): {sorted(names)[:3]}")
    assert not bad, "a lower layer calls an upper one (use the observer table):\n  " + "\n  ".join(bad)


@needs_tools
def test_the_tracker_observer_uses_nothing_of_the_engine(engine_objs, tmp_path):
    """samples/tracker's C part includes the engine's public header only and
    calls none of its functions: it is attached through the observer table
    (function pointers), so the engine needs nothing of it and it needs
    nothing of the engine but types."""
    engine = set()
    for obj in engine_objs:
        engine |= _symbols(obj)[0]
    used = set()
    for src in sorted(TRACKER_NATIVE.glob("*.c")):
        used |= _symbols(_compile_with(src, tmp_path / "t", [TRACKER_NATIVE]))[1]
    assert not (used & engine), f"the tracker calls the engine: {sorted(used & engine)}"
    for src in sorted(TRACKER_NATIVE.glob("*.[ch]")):
        for line in src.read_text().splitlines():
            if line.startswith('#include "'):
                name = line.split('"')[1]
                assert name == "mosfw_api.h" or (TRACKER_NATIVE / name).exists(), (
                    f"{src.name} includes the engine's private {name}"
                )


def test_no_native_file_over_600_lines():
    files = [*NATIVE.glob("*.[ch]"), *TRACKER_NATIVE.glob("*.[ch]")]
    long = {p.name: n for p in sorted(files) if (n := len(p.read_text().splitlines())) > 600}
    assert not long, f"split these by concern (600 lines at most): {long}"


def test_build_compiles_every_native_file():
    text = (NATIVE / "build_ffi.py").read_text()
    listed = {s for s in sorted(p.name for p in NATIVE.glob("*.c")) if f'"{s}"' in text}
    assert listed == {p.name for p in NATIVE.glob("*.c")}, "add new native files to build_ffi.py SOURCES"


def test_find_cycles_names_a_cycle():
    g = {"a": {"b": {"f"}}, "b": {"c": {"g"}}, "c": {"a": {"h"}}, "d": {"a": {"i"}}}
    assert find_cycles(g) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b": {"f"}}, "b": {}}) == []
