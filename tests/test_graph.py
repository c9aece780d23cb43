"""Motion graph (TANGO §3.1), pruning (Algorithm 1), dead-end walks and DP retrieval (§3.2)."""

from __future__ import annotations

import itertools
from collections import deque

import numpy as np
import pytest
from scipy import sparse

from avatar.config import GESTURE
from avatar.errors import AvatarError
from avatar.gesture.graph import (MotionGraph, balanced_distance, box_iou, build_graph, mask_iou,
                                  node_distances, node_starts, velocity_scale)
from avatar.gesture.prune import prune
from avatar.gesture.retrieval import best_path, count_jumps, path_score
from avatar.gesture.walks import STUCK, dead_end_probability, random_walks

F = GESTURE.node_frames


# -- helpers ------------------------------------------------------------------------------
def graph_of(num_nodes: int, edges: list[tuple[int, int]], starts=None, segment=None) -> MotionGraph:
    """A graph with the given edges; by default no two nodes are natural neighbours."""
    starts = np.arange(num_nodes) * 10 * F if starts is None else np.asarray(starts)
    segment = np.zeros(num_nodes, np.int64) if segment is None else np.asarray(segment)
    src, dst = (np.array(e, np.int64) for e in zip(*edges)) if edges else (np.zeros(0, int),) * 2
    adjacency = sparse.csr_matrix((np.ones(len(src), bool), (src, dst)), shape=(num_nodes, num_nodes))
    return MotionGraph(starts, segment, adjacency)


def reachable(graph: MotionGraph, source: int) -> set[int]:
    """Breadth-first search from ``source`` (independent of scipy's csgraph)."""
    seen, queue = {source}, deque([source])
    while queue:
        for nxt in graph.successors(queue.popleft()):
            if int(nxt) not in seen:
                seen.add(int(nxt))
                queue.append(int(nxt))
    return seen


def assert_strongly_connected(graph: MotionGraph) -> None:
    everyone = set(range(graph.num_nodes))
    assert graph.num_nodes >= 2
    assert (graph.out_degree() >= 1).all()
    for node in range(graph.num_nodes):
        assert reachable(graph, node) == everyone


def edge_set(graph: MotionGraph) -> set[tuple[int, int]]:
    return set(zip(*(a.tolist() for a in graph.edges())))


# -- nodes and distances ------------------------------------------------------------------
def test_node_starts_tile_runs_and_drop_tails():
    segment = np.array([0] * 10 + [1] * 7 + [-1] * 3 + [2] * 4)
    starts, seg = node_starts(segment, node_frames=4)
    np.testing.assert_array_equal(starts, [0, 4, 10, 20])
    np.testing.assert_array_equal(seg, [0, 0, 1, 2])


def test_mask_iou_matches_direct_computation():
    rng = np.random.default_rng(0)
    masks = rng.random((7, 30)) < 0.5
    masks[:, :5] = True  # always-on pixels
    masks[:, 5:9] = False  # always-off pixels
    masks[3] = False
    masks[3, :5] = True
    iou = mask_iou(masks)
    for i, j in itertools.product(range(7), repeat=2):
        union = (masks[i] | masks[j]).sum()
        assert iou[i, j] == pytest.approx((masks[i] & masks[j]).sum() / union)


def test_box_iou_values_and_unseen_hands():
    boxes = np.array([[0, 0, 2, 1], [1, 0, 3, 1], [np.nan] * 4, [np.nan] * 4], float)
    iou, weight = box_iou(boxes)
    assert iou[0, 1] == pytest.approx(1 / 3)  # overlap 1, union 3
    assert iou[0, 0] == 1.0 and iou[0, 2] == 0.0
    np.testing.assert_array_equal(weight[2:, 2:], 0.0)  # unseen in both frames: no say
    np.testing.assert_array_equal(weight[0], 1.0)
    points = np.array([[5, 5, 5, 5], [5, 5, 5, 5], [6, 6, 6, 6]], float)  # zero-area boxes
    np.testing.assert_array_equal(box_iou(points)[0], [[1, 1, 0], [1, 1, 0], [0, 0, 1]])


def clip_tracks(num_frames: int = 16, joints: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    positions = rng.normal(size=(num_frames, joints, 3))
    velocities = rng.normal(size=(num_frames, joints, 3))
    masks = rng.random((num_frames, 6, 5)) < 0.5
    hands = np.full((num_frames, 2, 4), np.nan)
    return positions, velocities, masks, hands


def test_identical_clips_have_zero_distance():
    positions, velocities, masks, hands = clip_tracks()
    hands[:, 0] = [10, 10, 20, 30]
    for array in (positions, velocities, masks, hands):
        array[8:12] = array[0:4]  # node 2 repeats node 0
    d_pose, d_iou = node_distances(positions, velocities, masks, hands, np.array([0, 4, 8, 12]))
    assert d_pose[0, 2] == pytest.approx(0.0, abs=1e-12) and d_iou[0, 2] == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(np.diag(d_pose), 0.0, atol=1e-12)
    assert d_pose[0, 1] > 0.1 and d_iou[0, 1] > 0.1


def test_disjoint_masks_give_iou_distance_one_and_known_values():
    positions, velocities, masks, hands = clip_tracks(num_frames=12)
    masks[:] = False
    masks[0:4, :, :2] = True  # node 0: left columns
    masks[4:8, :, 3:] = True  # node 1: right columns, disjoint
    masks[8:12, :, :1] = True  # node 2: half of node 0's mask
    hands[4:8, 1] = [0, 0, 5, 5]  # node 1 shows a hand the others do not
    _, d_iou = node_distances(positions, velocities, masks, hands, np.array([0, 4, 8]))
    assert d_iou[0, 1] == pytest.approx(1.0)
    assert d_iou[0, 2] == pytest.approx(0.5)  # IoU 1/2, no hands in either
    hands[0:4, 0] = [0, 0, 2, 1]
    hands[8:12, 0] = [1, 0, 3, 1]
    _, d_iou = node_distances(positions, velocities, masks, hands, np.array([0, 4, 8]))
    assert d_iou[0, 2] == pytest.approx(1 - (0.5 + 1 / 3) / 2)  # mask 1/2, left hand 1/3


def test_pose_distance_is_mean_joint_distance_with_scaled_velocities():
    positions = np.zeros((8, 2, 3))
    positions[4:, :, :] = [3.0, 4.0, 0.0]  # node 1 sits 5 away, every joint
    velocities = np.zeros((8, 2, 3))
    masks = np.ones((8, 2, 2), bool)
    unseen = np.full((8, 2, 4), np.nan)
    d_pose, _ = node_distances(positions, velocities, masks, unseen, np.array([0, 4]))
    assert d_pose[0, 1] == pytest.approx(5.0)
    velocities[:, :, 0] = 2.0
    scale = velocity_scale(positions, velocities)
    assert scale == pytest.approx(2.5 / 2.0)  # spread 2.5 around the mean, speed 2


def test_untracked_frames_are_a_user_error():
    positions, velocities, masks, hands = clip_tracks(num_frames=8)
    positions[5] = np.nan
    with pytest.raises(AvatarError):
        node_distances(positions, velocities, masks, hands, np.array([0, 4]))


def test_balanced_distance_scales_each_term_by_its_natural_step():
    d_pose = np.array([[0, 0.1, 0.4], [0.1, 0, 0.2], [0.4, 0.2, 0]])  # natural steps 0.1, 0.2
    d_iou = np.array([[0, 1.0, 0.5], [1.0, 0, 3.0], [0.5, 3.0, 0]])  # natural steps 1, 3
    balanced = balanced_distance(d_pose, d_iou, np.arange(3) * F, np.zeros(3, int))
    np.testing.assert_allclose(balanced, d_pose / 0.15 + d_iou / 2.0)


# -- edges ----------------------------------------------------------------------------------
def test_build_graph_adaptive_threshold():
    d = np.full((5, 5), 1.0)
    np.fill_diagonal(d, 0.0)
    for i in range(4):
        d[i, i + 1] = d[i + 1, i] = 0.3  # natural steps: t = 0.2 inside, 0.15 at the ends
    d[1, 3] = d[3, 1] = 0.1  # node 1 looks like node 3
    d[0, 2] = d[2, 0] = 0.18  # below t_2 = 0.2, not below t_0 = 0.15
    graph = build_graph(d, np.arange(5) * F, np.zeros(5, int))
    natural = {(0, 1), (1, 2), (2, 3), (3, 4)}
    expected = natural | {(0, 3), (2, 1), (1, 4), (3, 2), (1, 0)}
    assert edge_set(graph) == expected
    assert all(graph.is_natural(i, j) == ((i, j) in natural) for i, j in expected)


def test_build_graph_respects_segments_and_never_loops():
    d = np.full((4, 4), 0.01)  # everything alike: every candidate passes ...
    np.fill_diagonal(d, 0.0)
    d[0, 1] = d[1, 0] = d[2, 3] = d[3, 2] = 0.5  # ... the natural thresholds are high
    graph = build_graph(d, np.array([0, 4, 0, 4]), np.array([0, 0, 1, 1]))
    assert (0, 1) in edge_set(graph) and (2, 3) in edge_set(graph)
    assert not graph.is_natural(1, 2) and all((i, i) not in edge_set(graph) for i in range(4))
    assert graph.successors(1).size > 0  # a segment's last node can still get out-edges


def test_graph_arrays_round_trip_and_subgraph_ids():
    graph = graph_of(4, [(0, 1), (1, 2), (2, 0), (2, 3)])
    sub = graph.subgraph(np.array([True, False, True, True]))
    np.testing.assert_array_equal(sub.ids, [0, 2, 3])
    assert edge_set(sub) == {(1, 0), (1, 2)}
    back = MotionGraph.from_arrays(sub.save_arrays())
    assert edge_set(back) == edge_set(sub)
    np.testing.assert_array_equal(back.ids, sub.ids)
    np.testing.assert_array_equal(back.starts, sub.starts)
    with pytest.raises(AvatarError):
        MotionGraph.from_arrays({})


# -- pruning --------------------------------------------------------------------------------
def test_prune_removes_dead_end_tails_and_sources():
    # cycle 0-1-2, tail 2 -> 3 -> 4 (dead end), node 5 only feeds the cycle
    graph = graph_of(6, [(0, 1), (1, 2), (2, 0), (2, 3), (3, 4), (5, 0)])
    pruned, report = prune(graph)
    np.testing.assert_array_equal(pruned.ids, [0, 1, 2])
    assert_strongly_connected(pruned)
    assert (report.nodes_before, report.nodes_after, report.dead_ends, report.components) == (6, 3, 2, 2)
    assert (report.edges_before, report.edges_after) == (6, 3)


def test_prune_keeps_the_larger_of_two_one_way_components():
    graph = graph_of(7, [(0, 1), (1, 2), (2, 0), (2, 3), (3, 4), (4, 5), (5, 6), (6, 3)])
    pruned, report = prune(graph)
    np.testing.assert_array_equal(pruned.ids, [3, 4, 5, 6])
    assert report.dead_ends == 0 and report.components == 2
    assert_strongly_connected(pruned)


def test_prune_random_graphs_never_dead_end_afterwards():
    rng = np.random.default_rng(3)
    for trial in range(5):
        n = 60
        edges = [(i, i + 1) for i in range(n - 1) if rng.random() < 0.8]  # broken chains
        edges += [tuple(e) for e in rng.integers(n, size=(40, 2)) if e[0] != e[1]]
        graph = graph_of(n, edges, starts=np.arange(n) * F)
        pruned, _ = prune(graph)
        assert_strongly_connected(pruned)
        assert (random_walks(pruned, 200, 300, seed=trial) != STUCK).all()
        assert dead_end_probability(graph, 10.0, 30.0, walks=300, seed=trial) > 0.0


def test_prune_without_any_cycle_is_a_user_error():
    with pytest.raises(AvatarError):
        prune(graph_of(4, [(0, 1), (1, 2), (2, 3)]))


# -- dead-end walks -------------------------------------------------------------------------
def test_dead_end_probability_of_a_chain_is_analytic():
    n, fps, seconds = 50, 30.0, 2.0
    chain = graph_of(n, [(i, i + 1) for i in range(n - 1)], starts=np.arange(n) * F)
    length = round(seconds * fps / F)  # 15 nodes: stuck iff the start is among the last 14
    expected = (length - 1) / n
    p = dead_end_probability(chain, seconds, fps, walks=20000, seed=1)
    assert p == pytest.approx(expected, abs=0.015)
    assert p == dead_end_probability(chain, seconds, fps, walks=20000, seed=1)  # deterministic
    assert dead_end_probability(chain, 60.0, fps, walks=500) == 1.0  # longer than the chain
    cycle = graph_of(3, [(0, 1), (1, 2), (2, 0)])
    assert dead_end_probability(cycle, 30.0, fps) == 0.0


# -- retrieval --------------------------------------------------------------------------------
def brute_force(graph: MotionGraph, scores: np.ndarray, penalty: float, min_run: int,
                start=None) -> float:
    """Best objective over every walk that keeps runs between jumps >= min_run nodes."""
    best = -np.inf
    firsts = range(graph.num_nodes) if start is None else [start]
    for first in firsts:
        stack = [([first], min_run)]
        while stack:
            path, run = stack.pop()
            if len(path) == len(scores):
                best = max(best, path_score(graph, np.array(path), scores, penalty))
                continue
            for nxt in graph.successors(path[-1]):
                natural = graph.is_natural(path[-1], nxt)
                if natural or run >= min_run:
                    stack.append((path + [int(nxt)], run + 1 if natural else 1))
    return best


def test_best_path_matches_brute_force():
    rng = np.random.default_rng(7)
    n = 6
    for trial in range(6):
        edges = [(i, i + 1) for i in range(n - 1)]  # one natural chain ...
        edges += [tuple(e) for e in rng.integers(n, size=(7, 2)) if e[0] != e[1] and e[1] != e[0] + 1]
        graph = graph_of(n, sorted(set(edges)), starts=np.arange(n) * F)
        scores = rng.normal(size=(6, n))
        for min_run, penalty, start in ((1, 0.3, None), (2, 0.3, None), (3, 0.1, None), (2, 0.5, 1)):
            expected = brute_force(graph, scores, penalty, min_run, start)
            if not np.isfinite(expected):
                continue
            path = best_path(graph, scores, penalty, start=start, min_run=min_run)
            assert path_score(graph, path, scores, penalty) == pytest.approx(expected)
            assert all(int(b) in graph.successors(a) for a, b in zip(path[:-1], path[1:]))
            if start is not None:
                assert path[0] == start


def test_jump_penalty_prefers_natural_runs():
    # two chains of 6 nodes (two segments), every cross pair joined by a transition
    n, half = 12, 6
    edges = [(i, i + 1) for i in range(n - 1) if i != half - 1]
    edges += [(i, j) for i in range(half) for j in range(half, n)]
    edges += [(j, i) for i in range(half) for j in range(half, n)]
    segment = np.repeat([0, 1], half)
    graph = graph_of(n, edges, starts=np.tile(np.arange(half) * F, 2), segment=segment)
    scores = np.random.default_rng(0).random((10, n)) * 0.1
    free = best_path(graph, scores, jump_penalty=0.0, min_run=1)
    costly = best_path(graph, scores, jump_penalty=1.0, min_run=1)
    assert count_jumps(graph, free) >= 3
    assert count_jumps(graph, costly) == 1  # 10 slots need one jump between chains of 6
    runs = np.split(costly, np.flatnonzero(~graph.are_natural(costly[:-1], costly[1:])) + 1)
    assert min(len(run) for run in runs) >= 4


def test_best_path_min_run_keeps_runs_between_jumps():
    rng = np.random.default_rng(1)
    n = 20
    edges = [(i, i + 1) for i in range(n - 1)] + [(i, j) for i in range(n) for j in range(n)
                                                 if j not in (i, i + 1) and rng.random() < 0.3]
    graph = graph_of(n, edges, starts=np.arange(n) * F)
    scores = rng.normal(size=(40, n))
    path = best_path(graph, scores, jump_penalty=0.0, min_run=3)
    jumps = np.flatnonzero(~graph.are_natural(path[:-1], path[1:])) + 1  # slots starting a run
    assert len(jumps) >= 2
    assert np.diff(jumps).min() >= 3


def test_best_path_drops_an_impossible_run_constraint_and_rejects_stuck_graphs():
    ping_pong = graph_of(2, [(0, 1), (1, 0)])  # only jumps: runs of 1 node
    path = best_path(ping_pong, np.zeros((4, 2)), jump_penalty=0.1, min_run=2)
    np.testing.assert_array_equal(np.abs(np.diff(path)), 1)
    chain = graph_of(3, [(0, 1), (1, 2)], starts=np.arange(3) * F)
    with pytest.raises(ValueError):
        best_path(chain, np.zeros((5, 3)), jump_penalty=0.0)
