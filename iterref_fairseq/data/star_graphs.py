"""Synthetic star-graph traversal data, as defined by the LFlexMDM paper's generators (§5.1; docs/flexmdm.md).

Every graph is a set of simple *directed* paths that share one junction node. The prompt lists the directed edges
in random order and then names a source and a goal; the target is the source-to-goal path written as its edges,
each as a (previous node, next node) pair. Node ids are drawn without replacement from ``n_ids`` labels.

Difficulties (path lengths count nodes, the junction included):

* easy (``path_star``): the classic path-star graph of Bachmann & Nagarajan. The SOURCE IS THE CENTRE; 3 arms of
  5 nodes each leave it; the goal is the leaf of one arm, so the target is that arm (4 edges). 20 ids.
* medium (``crossing_paths``): 3 paths of 3-6 nodes cross one junction, each at its own random index
  ``< length - min_plan`` (min_plan 2: at least 2 nodes follow the junction). Source = first node of path 0,
  goal = its last node, target = path 0 (the source is the junction itself when path 0's index is 0). 20 ids.
* hard (``crossing_paths``): 5 paths of 6-12 nodes, min_plan 5, 56 ids.

Token format (whitespace separated, no separators: edges flattened, then source and goal)::

    prompt: 7 0 3 9 7 3 0 6 9 12 12 5 7 1 1 14 6 11 14 2 11 19 2 8 7 5
    target: 7 3 3 9 9 12 12 5

That is the easy graph with centre 7 and arms 7-3-9-12-5, 7-1-14-2-8, 7-0-6-11-19 (edges shuffled), goal 5. At the
centre the model must pick, among the three outgoing edges, the one whose arm ends in the goal: the choice that a
left-to-right next-token predictor cannot make without look-ahead. The paper's block sizes (prompt / target,
BOS and EOS included) are 28/14, 36/16 and 116/28 (:data:`BLOCK_SIZES`).

Both lines are plain text for fairseq-preprocess (``{split}.src`` / ``{split}.tgt``).
"""
import random
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Set, Tuple

import networkx as nx

DIFFICULTIES: Dict[str, Dict[str, int]] = {
    "easy": {"kind": "path_star", "degree": 3, "path_length": 5, "n_ids": 20},
    "medium": {"kind": "crossing_paths", "degree": 3, "min_length": 3, "max_length": 6, "min_plan": 2,
               "n_ids": 20},
    "hard": {"kind": "crossing_paths", "degree": 5, "min_length": 6, "max_length": 12, "min_plan": 5,
             "n_ids": 56},
}
# the paper's block sizes (prompt tokens, target tokens), BOS and EOS included
BLOCK_SIZES: Dict[str, Tuple[int, int]] = {"easy": (28, 14), "medium": (36, 16), "hard": (116, 28)}

Path = Tuple[int, ...]


@dataclass(frozen=True)
class StarGraphExample:
    edges: Tuple[Tuple[int, int], ...]  # directed (u -> v) along the paths, in shuffled order
    source: int
    goal: int
    junction: int
    paths: Tuple[Path, ...]  # every path of the graph; paths[0] is the target

    @property
    def path(self) -> Path:
        return self.paths[0]

    def prompt(self) -> str:
        return " ".join(str(x) for e in self.edges for x in e) + f" {self.source} {self.goal}"

    def target(self) -> str:
        return " ".join(f"{u} {v}" for u, v in zip(self.path, self.path[1:]))

    def key(self) -> Tuple:
        """Canonical identity (edge order ignored)."""
        return (frozenset(self.edges), self.source, self.goal)


def difficulty_config(name: str) -> Dict[str, int]:
    if name not in DIFFICULTIES:
        raise ValueError(f"unknown star-graph difficulty {name!r}; choose one of {', '.join(DIFFICULTIES)}")
    return DIFFICULTIES[name]


def _assemble(rng: random.Random, paths: List[List[int]], junction: int) -> StarGraphExample:
    edges = [(p[i], p[i + 1]) for p in paths for i in range(len(p) - 1)]
    rng.shuffle(edges)
    return StarGraphExample(tuple(edges), paths[0][0], paths[0][-1], junction, tuple(map(tuple, paths)))


def sample_path_star(rng: random.Random, degree: int, path_length: int, n_ids: int) -> StarGraphExample:
    """The source is the centre; ``degree`` arms of ``path_length`` nodes (centre included); goal = leaf of arm 0."""
    if degree < 2 or path_length < 2:
        raise ValueError(f"invalid path-star graph: degree {degree}, path length {path_length}")
    n_nodes = 1 + degree * (path_length - 1)
    if n_nodes > n_ids:
        raise ValueError(f"{n_nodes} nodes need more than the {n_ids} available ids")
    labels = rng.sample(range(n_ids), n_nodes)
    centre, rest = labels[0], labels[1:]
    arms = [[centre] + rest[k * (path_length - 1):(k + 1) * (path_length - 1)] for k in range(degree)]
    return _assemble(rng, arms, centre)


def sample_crossing_paths(rng: random.Random, degree: int, min_length: int, max_length: int, min_plan: int,
                          n_ids: int) -> StarGraphExample:
    """``degree`` paths of ``min_length``-``max_length`` nodes through one junction, each at an index drawn
    uniformly from [0, length - min_plan); the target is path 0."""
    if degree < 2 or min_length < 2 or max_length < min_length or not 1 <= min_plan <= min_length - 1:
        raise ValueError(f"invalid crossing-paths graph: degree {degree}, lengths {min_length}-{max_length}, "
                         f"min plan {min_plan}")
    lengths = [rng.randint(min_length, max_length) for _ in range(degree)]
    n_nodes = sum(lengths) - degree + 1
    if n_nodes > n_ids:
        raise ValueError(f"{n_nodes} nodes need more than the {n_ids} available ids")
    labels = rng.sample(range(n_ids), n_nodes)
    junction, rest = labels[0], iter(labels[1:])
    paths = []
    for n in lengths:
        at = rng.randrange(n - min_plan)
        paths.append([junction if i == at else next(rest) for i in range(n)])
    return _assemble(rng, paths, junction)


def sample_example(rng: random.Random, kind: str, **cfg: int) -> StarGraphExample:
    if kind == "path_star":
        return sample_path_star(rng, **cfg)
    if kind == "crossing_paths":
        return sample_crossing_paths(rng, **cfg)
    raise ValueError(f"unknown star-graph family {kind!r}; choose path_star or crossing_paths")


def max_lengths(difficulty: str) -> Tuple[int, int]:
    """Longest prompt and target of a difficulty, in tokens (no BOS / EOS)."""
    cfg = difficulty_config(difficulty)
    if cfg["kind"] == "path_star":
        edges, plan = cfg["degree"] * (cfg["path_length"] - 1), cfg["path_length"] - 1
    else:
        edges, plan = cfg["degree"] * (cfg["max_length"] - 1), cfg["max_length"] - 1
    return 2 * edges + 2, 2 * plan


def _ints(line: str, what: str, expected: str) -> List[int]:
    try:
        return [int(x) for x in line.split()]
    except ValueError:
        raise ValueError(f"malformed star-graph {what} {line!r}: expected {expected}") from None


PROMPT_FORMAT = "'u1 v1 u2 v2 ... source goal' (node ids: the edges flattened, then source and goal)"
TARGET_FORMAT = "'s v1 v1 v2 ... goal' (the path's edges as node pairs, each starting where the last ended)"


def parse_prompt(prompt: str) -> Tuple[List[Tuple[int, int]], int, int]:
    """Inverse of :meth:`StarGraphExample.prompt`: (directed edges, source, goal). Raises ValueError naming the line."""
    ids = _ints(prompt, "prompt", PROMPT_FORMAT)
    if len(ids) < 4 or len(ids) % 2:
        raise ValueError(f"malformed star-graph prompt {prompt!r}: expected {PROMPT_FORMAT}")
    body = ids[:-2]
    return list(zip(body[0::2], body[1::2])), ids[-2], ids[-1]


def parse_target(target: str) -> List[int]:
    """Inverse of :meth:`StarGraphExample.target`: the node path. Raises ValueError naming the line."""
    ids = _ints(target, "target", TARGET_FORMAT)
    if len(ids) < 2 or len(ids) % 2 or any(ids[k] != ids[k + 1] for k in range(1, len(ids) - 1, 2)):
        raise ValueError(f"malformed star-graph target {target!r}: expected {TARGET_FORMAT}")
    return [ids[0]] + ids[1::2]


def token_node_index(n_tokens: int) -> List[int]:
    """Position on the path of each target token: edge e = (path[e], path[e + 1]) is tokens 2e, 2e + 1, so token k
    is node (k + 1) // 2. Example, 3 edges: tokens 0..5 -> nodes 0 1 1 2 2 3."""
    return [(k + 1) // 2 for k in range(n_tokens)]


def graph_of(edges: Sequence[Tuple[int, int]]) -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_edges_from(edges)
    return g


def junction_of(edges: Sequence[Tuple[int, int]]) -> Optional[int]:
    """The node with more than two incident edges (None for a single path)."""
    g = graph_of(edges)
    hubs = [n for n in g.nodes if g.in_degree(n) + g.out_degree(n) > 2]
    return hubs[0] if len(hubs) == 1 else None


def is_valid_path(edges: Sequence[Tuple[int, int]], source: int, goal: int, path: Sequence[int]) -> bool:
    """path starts at source, ends at goal, follows directed edges and visits no node twice."""
    g = graph_of(edges)
    if not path or path[0] != source or path[-1] != goal or len(set(path)) != len(path):
        return False
    return all(g.has_edge(u, v) for u, v in zip(path, path[1:]))


def generate_splits(difficulty: str, seed: int, sizes: Dict[str, int]) -> Dict[str, List[StarGraphExample]]:
    """Disjoint splits (no graph/query appears twice across or within splits), reproducible from ``seed``."""
    cfg = difficulty_config(difficulty)
    rng = random.Random(seed)
    seen: Set[Tuple] = set()
    out: Dict[str, List[StarGraphExample]] = {}
    for split, n in sizes.items():
        examples, tries = [], 0
        while len(examples) < n:
            tries += 1
            if tries > 50 * n + 1000:
                raise RuntimeError(f"could not draw {n} distinct {difficulty} star graphs; ask for fewer")
            ex = sample_example(rng, **cfg)
            if ex.key() in seen:
                continue
            seen.add(ex.key())
            examples.append(ex)
        out[split] = examples
    return out


def vocabulary(difficulty: str) -> List[str]:
    """All symbols of a difficulty (the node ids), for a fixed fairseq dictionary."""
    return [str(i) for i in range(difficulty_config(difficulty)["n_ids"])]


def iter_lines(examples: Sequence[StarGraphExample]) -> Iterator[Tuple[str, str]]:
    for ex in examples:
        yield ex.prompt(), ex.target()


FAILURE_KINDS = ("exact", "before_junction", "wrong_arm", "on_goal_arm")


def failure_kind(prompt: str, target: str, hypothesis: str) -> str:
    """Where a hypothesis first leaves the target, relative to the junction.

    With the junction at path index j, the arm choice is the first token of node j + 1 (token 2j + 1: the second
    half of the edge that leaves the junction). Let k be the first token where hypothesis and target differ (a
    length difference counts at the shorter length):

    * ``before_junction``: token k belongs to a node up to the junction (node (k + 1) // 2 <= j);
    * ``wrong_arm``: k = 2j + 1: right up to the junction, then the wrong outgoing edge (the choice that needs
      look-ahead: Bachmann & Nagarajan's "Clever Hans" failure of teacher-forced next-token prediction);
    * ``on_goal_arm``: the right outgoing edge, a later token wrong (or a path too short / too long).

    Worked example (the module docstring's easy graph, junction = source 7, j = 0): target
    ``7 3 3 9 9 12 12 5``. ``7 0 0 6 6 11 11 19`` -> k = 1 = 2j + 1 -> ``wrong_arm``;
    ``7 3 3 9 9 12`` -> k = 6 -> ``on_goal_arm``; ``3 9 9 12 12 5`` -> k = 0 -> ``before_junction``.
    """
    edges, _, _ = parse_prompt(prompt)
    ref, hyp = target.split(), hypothesis.split()
    if hyp == ref:
        return "exact"
    junction = junction_of(edges)
    path = [str(n) for n in parse_target(target)]
    if junction is None or str(junction) not in path:
        raise ValueError(f"target {target!r} does not pass a junction of prompt {prompt!r}: not star-graph data")
    j = path.index(str(junction))
    k = next((i for i, (a, b) in enumerate(zip(hyp, ref)) if a != b), min(len(hyp), len(ref)))
    if (k + 1) // 2 <= j:
        return "before_junction"
    return "wrong_arm" if k == 2 * j + 1 else "on_goal_arm"


def failure_report(triples: Sequence[Tuple[str, str, str]]) -> Dict[str, Optional[float]]:
    """Counts over (prompt, target, hypothesis) triples: failure kinds, right length, source / goal token right,
    token accuracy over the right-length hypotheses (position by position)."""
    report: Dict[str, Optional[float]] = {k: 0 for k in FAILURE_KINDS}
    right_length = matched = compared = source = goal = 0
    for prompt, target, hypothesis in triples:
        report[failure_kind(prompt, target, hypothesis)] += 1
        ref, hyp = target.split(), hypothesis.split()
        source += bool(hyp) and hyp[0] == ref[0]
        goal += bool(hyp) and hyp[-1] == ref[-1]
        if len(hyp) == len(ref):
            right_length += 1
            matched += sum(a == b for a, b in zip(hyp, ref))
            compared += len(ref)
    report.update(total=len(triples), right_length=right_length, source_token_right=source, goal_token_right=goal,
                  token_accuracy_right_length=round(matched / compared, 4) if compared else None)
    return report
