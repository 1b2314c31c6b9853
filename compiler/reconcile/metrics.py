"""The loop's Prometheus metrics (prometheus_client, in a registry of its own).

Per environment:
    specops_reconcile_sync_status{env, last_sync_result}     1 for the last result, 0 for the others
    specops_reconcile_last_sync_timestamp_seconds{env}       end of the last sync attempt
    specops_reconcile_last_success_timestamp_seconds{env}    end of the last successful sync
    specops_reconcile_syncs_total{env, result}               sync attempts by result
    specops_reconcile_drift_resources{env}                   resources drifted and not healed at the last sync
    specops_reconcile_drift_healed_total{env}                live changes the loop put back (drift: reconcile)
    specops_reconcile_resources{env, status}                 resources per status after the last sync
    specops_reconcile_gate_blocks{env, gate}                 rollouts a gate held back at the last sync
    specops_reconcile_applied_total{env}                     actions applied
The loop:
    specops_reconcile_up                                     1 while the loop runs
    specops_reconcile_ready                                  1 after the first successful fetch
    specops_reconcile_revision_info{branch, revision}        the revision checked out
    specops_reconcile_fetch_errors_total                     fetches that failed
    specops_reconcile_backoff_seconds                        the current back-off (0: none)

`last_sync_result` is one of RESULTS: success (everything applied or nothing to do), error
(the sync failed: fetch, invalid specs, a held lock, a failed action) or blocked (a gate held a
rollout back). Statuses are STATUSES.
"""

from __future__ import annotations

from collections.abc import Iterable

RESULTS = ("success", "error", "blocked")
STATUSES = ("synced", "out_of_sync", "drifted", "blocked", "orphaned")


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge

        r = self.registry = CollectorRegistry(auto_describe=True)
        self.sync_status = Gauge("specops_reconcile_sync_status", "Result of the last sync of the environment "
                                 "(1 for the current result).", ["env", "last_sync_result"], registry=r)
        self.last_sync = Gauge("specops_reconcile_last_sync_timestamp_seconds",
                               "Unix time the last sync attempt of the environment ended.", ["env"], registry=r)
        self.last_success = Gauge("specops_reconcile_last_success_timestamp_seconds",
                                  "Unix time of the last successful sync of the environment.", ["env"], registry=r)
        self.syncs = Counter("specops_reconcile_syncs", "Sync attempts by result.", ["env", "result"], registry=r)
        self.drift = Gauge("specops_reconcile_drift_resources",
                           "Resources whose live object changed outside specops, at the last sync.", ["env"],
                           registry=r)
        self.healed = Counter("specops_reconcile_drift_healed", "Drifted resources the loop put back "
                              "(policy drift: reconcile).", ["env"], registry=r)
        self.resources = Gauge("specops_reconcile_resources", "Resources per status after the last sync.",
                               ["env", "status"], registry=r)
        self.gate_blocks = Gauge("specops_reconcile_gate_blocks",
                                 "Rollouts an eval gate held back at the last sync.", ["env", "gate"], registry=r)
        self.applied = Counter("specops_reconcile_applied", "Actions applied.", ["env"], registry=r)
        self.up = Gauge("specops_reconcile_up", "1 while the reconcile loop runs.", registry=r)
        self.ready = Gauge("specops_reconcile_ready", "1 after the first successful fetch.", registry=r)
        self.revision = Gauge("specops_reconcile_revision_info", "The revision checked out (value 1).",
                              ["branch", "revision"], registry=r)
        self.fetch_errors = Counter("specops_reconcile_fetch_errors", "Fetches of the branch that failed.",
                                    registry=r)
        self.backoff = Gauge("specops_reconcile_backoff_seconds", "The current back-off after errors (0: none).",
                             registry=r)

    def record(self, env: str, result: str, when: float, *, drifted: int | None = None,
               statuses: dict[str, int] | None = None, gate_blocks: dict[str, int] | None = None,
               applied: int = 0, healed: int = 0) -> None:
        for r in RESULTS:
            self.sync_status.labels(env, r).set(1 if r == result else 0)
        self.syncs.labels(env, result).inc()
        self.last_sync.labels(env).set(when)
        if result == "success":
            self.last_success.labels(env).set(when)
        if drifted is not None:
            self.drift.labels(env).set(drifted)
            self.healed.labels(env)  # the series exists (at 0) before the first heal
        if statuses is not None:
            for s in STATUSES:
                self.resources.labels(env, s).set(statuses.get(s, 0))
        if gate_blocks is not None:
            for labels in list(self.gate_blocks._metrics):  # gates that no longer block drop out
                if labels[0] == env and labels[1] not in gate_blocks:
                    self.gate_blocks.remove(*labels)
            for gate, n in sorted(gate_blocks.items()):
                self.gate_blocks.labels(env, gate).set(n)
        if applied:
            self.applied.labels(env).inc(applied)
        if healed:
            self.healed.labels(env).inc(healed)

    def errors(self, envs: Iterable[str], when: float) -> None:
        for env in envs:
            self.record(env, "error", when)

    def set_revision(self, branch: str, revision: str) -> None:
        self.revision.clear()
        self.revision.labels(branch, revision).set(1)

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
