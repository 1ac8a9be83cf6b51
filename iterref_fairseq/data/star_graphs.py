"""Synthetic star-graph traversal data (seed 002 §5.1; REFERENCE §4).

A star graph has one junction node and ``degree`` arms (simple paths hanging off the junction). The query picks
two arm ends: the prompt is the shuffled, randomly oriented edge list followed by the source and the goal; the
target is the unique path source -> ... -> junction -> ... -> goal. Node ids are drawn without replacement from
``n_ids`` labels, so the model cannot rely on label order.

Difficulties (arm lengths count the junction, as in the paper's "paths of 6-12 nodes"; 5 arms x 11 + 1 = 56 ids):

* easy:   3 arms of 3 nodes (path length 5), 20 ids;
* medium: 3 arms of 3-6 nodes, 20 ids;
* hard:   5 arms of 6-12 nodes, 56 ids.

Token format (whitespace separated; ``,`` ends an edge, ``|`` starts the query)::

    prompt: 4 17 , 9 4 , 3 4 , 17 2 , 11 9 , 5 3 | 11 2
    target: 11 9 4 17 2              # junction 4 (degree 3), arms [9 11], [17 2], [3 5]

Both lines are plain text for fairseq-preprocess (``{split}.src`` / ``{split}.tgt``).
"""
import random
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Set, Tuple

import networkx as nx

DIFFICULTIES: Dict[str, Dict[str, int]] = {
    # arm_min / arm_max: nodes per arm beyond the junction
    "easy": {"degree": 3, "arm_min": 2, "arm_max": 2, "n_ids": 20},
    "medium": {"degree": 3, "arm_min": 2, "arm_max": 5, "n_ids": 20},
    "hard": {"degree": 5, "arm_min": 5, "arm_max": 11, "n_ids": 56},
}
EDGE_SEP, QUERY_SEP = ",", "|"


@dataclass(frozen=True)
class StarGraphExample:
    edges: Tuple[Tuple[int, int], ...]  # shuffled, randomly oriented
    source: int
    goal: int
    junction: int
    path: Tuple[int, ...]

    def prompt(self) -> str:
        body = f" {EDGE_SEP} ".join(f"{u} {v}" for u, v in self.edges)
        return f"{body} {QUERY_SEP} {self.source} {self.goal}"

    def target(self) -> str:
        return " ".join(map(str, self.path))

    def key(self) -> Tuple:
        """Canonical identity (edge order and orientation ignored)."""
        return (frozenset(frozenset(e) for e in self.edges), self.source, self.goal)


def difficulty_config(name: str) -> Dict[str, int]:
    if name not in DIFFICULTIES:
        raise ValueError(f"unknown star-graph difficulty {name!r}; choose one of {', '.join(DIFFICULTIES)}")
    return DIFFICULTIES[name]


def sample_example(rng: random.Random, degree: int, arm_min: int, arm_max: int, n_ids: int) -> StarGraphExample:
    if degree < 2 or arm_min < 1 or arm_max < arm_min:
        raise ValueError(f"invalid star graph: degree {degree}, arm lengths {arm_min}-{arm_max}")
    lengths = [rng.randint(arm_min, arm_max) for _ in range(degree)]
    if 1 + sum(lengths) > n_ids:
        raise ValueError(f"{1 + sum(lengths)} nodes need more than the {n_ids} available ids")
    labels = rng.sample(range(n_ids), 1 + sum(lengths))
    junction, rest = labels[0], labels[1:]
    arms, edges = [], []
    for n in lengths:
        arm, rest = rest[:n], rest[n:]
        arms.append(arm)
        chain = [junction] + arm
        edges += [(chain[i], chain[i + 1]) for i in range(n)]
    edges = [(u, v) if rng.random() < 0.5 else (v, u) for u, v in edges]
    rng.shuffle(edges)
    a, b = rng.sample(range(degree), 2)
    path = tuple(list(reversed(arms[a])) + [junction] + arms[b])
    return StarGraphExample(tuple(edges), path[0], path[-1], junction, path)


def parse_prompt(prompt: str) -> Tuple[List[Tuple[int, int]], int, int]:
    """Inverse of :meth:`StarGraphExample.prompt`: (edges, source, goal). Raises ValueError naming the line."""
    try:
        body, query = prompt.split(QUERY_SEP)
        edges = []
        for chunk in body.split(EDGE_SEP):
            u, v = chunk.split()
            edges.append((int(u), int(v)))
        source, goal = map(int, query.split())
    except ValueError:
        raise ValueError(f"malformed star-graph prompt {prompt!r}: expected 'u v , u v , ... | source goal'")
    return edges, source, goal


def graph_of(edges: Sequence[Tuple[int, int]]) -> nx.Graph:
    g = nx.Graph()
    g.add_edges_from(edges)
    return g


def junction_of(edges: Sequence[Tuple[int, int]]) -> Optional[int]:
    """The node of degree > 2 (None for a single path)."""
    g = graph_of(edges)
    hubs = [n for n, d in g.degree() if d > 2]
    return hubs[0] if len(hubs) == 1 else None


def is_valid_path(edges: Sequence[Tuple[int, int]], source: int, goal: int, path: Sequence[int]) -> bool:
    """path starts at source, ends at goal, follows edges, visits no node twice, and passes the junction."""
    g = graph_of(edges)
    if not path or path[0] != source or path[-1] != goal or len(set(path)) != len(path):
        return False
    if any(not g.has_edge(u, v) for u, v in zip(path, path[1:])):
        return False
    j = junction_of(edges)
    return j is None or j in path


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
    """All symbols of a difficulty (node ids and separators), for a fixed fairseq dictionary."""
    return [str(i) for i in range(difficulty_config(difficulty)["n_ids"])] + [EDGE_SEP, QUERY_SEP]


def iter_lines(examples: Sequence[StarGraphExample]) -> Iterator[Tuple[str, str]]:
    for ex in examples:
        yield ex.prompt(), ex.target()


FAILURE_KINDS = ("exact", "before_junction", "wrong_arm", "on_goal_arm")


def failure_kind(prompt: str, target: str, hypothesis: str) -> str:
    """Where a hypothesis first leaves the target path, relative to the junction.

    * ``before_junction``: the first wrong token is the source, a node of the source arm or the junction;
    * ``wrong_arm``: everything up to the junction is right, the next node is not (the arm choice -- the step that
      needs planning, where a teacher-forced next-token model guesses: Bachmann & Nagarajan's "Clever Hans" failure);
    * ``on_goal_arm``: the right arm, but a later node is wrong or the path is too short / too long.

    Worked example (the module docstring's graph): target ``11 9 4 17 2``, junction 4 at index 2.
    ``11 9 4 3 5`` -> first difference at index 3 = junction + 1 -> ``wrong_arm``;
    ``11 9 4 17`` -> no difference in the common prefix, length differs at index 4 -> ``on_goal_arm``;
    ``11 4 17 2`` -> first difference at index 1 <= 2 -> ``before_junction``.
    """
    edges, _, _ = parse_prompt(prompt)
    ref, hyp = target.split(), hypothesis.split()
    if hyp == ref:
        return "exact"
    junction = junction_of(edges)
    if junction is None or str(junction) not in ref:
        raise ValueError(f"target {target!r} does not pass a junction of prompt {prompt!r}: not star-graph data")
    j = ref.index(str(junction))
    first = next((i for i, (a, b) in enumerate(zip(hyp, ref)) if a != b), min(len(hyp), len(ref)))
    if first <= j:
        return "before_junction"
    return "wrong_arm" if first == j + 1 else "on_goal_arm"


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
