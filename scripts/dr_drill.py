"""Disaster-recovery drill: point-in-time recovery of a throwaway cluster, proven.

Run by `make dr-drill` (scripts/dr-drill.sh prepares .venv and PostgreSQL first). On a
throwaway PostgreSQL cluster (temporary folder, random free port, WAL archiving on):

  1. migrate; load: `manage.py simulate` (phase 1);
  2. base backup with pg_basebackup;
  3. more load (phase 2); `verify_ledger --json` saved as the checkpoint; the target time;
  4. more load after the target (phase 3); the last WAL segment archived;
  5. the data directory is destroyed;
  6. restore: the base backup, then the archived WAL replayed up to the target time;
  7. proof: `verify_ledger` clean, `verify_ledger --checkpoint` passes, every ledger row an
     operation was acknowledged with before the target is there, none acknowledged after
     it is, and the restored ledger holds no row nobody was told about.

The acknowledgements are what the load generator was told (`simulate --ack-log`), never
what the database says. Prints a summary (rows restored, backup size, restore time) and
exits 1 on any difference, 2 when the drill itself could not run. The cluster is stopped
and its folder removed at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"
DATABASE = "divine_whispers"


class DrillError(RuntimeError):
    """The drill could not run (not a finding about the restore)."""


def say(message: str) -> None:
    print(f"[dr-drill {time.strftime('%H:%M:%S')}] {message}", flush=True)


def pg_bin_dir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise DrillError("PostgreSQL server binaries not found (apt-get install postgresql)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Cluster:
    """A throwaway cluster run by `postgres` when we are root (initdb refuses root)."""

    bin: Path
    work: Path
    port: int
    runas: list[str] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return self.work / "data"

    @property
    def archive(self) -> Path:
        return self.work / "wal-archive"

    @property
    def log(self) -> Path:
        return self.work / "postgres.log"

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([*self.runas, *args], capture_output=True, text=True)
        if check and result.returncode != 0:
            raise DrillError(f"{' '.join(args[:2])} failed:\n{result.stdout}{result.stderr}")
        return result

    def init(self) -> None:
        self.run("mkdir", "-p", str(self.archive))
        self.run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust")
        self.configure(
            {
                "listen_addresses": "'127.0.0.1'",
                "port": str(self.port),
                "unix_socket_directories": f"'{self.work}'",
                "wal_level": "replica",
                "archive_mode": "on",
                "archive_command": f"'test ! -f {self.archive}/%f && cp %p {self.archive}/%f'",
                "fsync": "on",
            }
        )

    def configure(self, values: dict[str, str]) -> None:
        lines = "".join(f"{name} = {value}\n" for name, value in values.items())
        subprocess.run(
            [*self.runas, "sh", "-c", f"cat >> '{self.data}/postgresql.auto.conf'"],
            input=lines,
            text=True,
            check=True,
        )

    def start(self) -> None:
        self.run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t",
            "300", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self.run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "stop", check=False)

    def url(self, database: str = DATABASE) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def query(self, sql: str, database: str = DATABASE) -> list[tuple]:
        with psycopg.connect(self.url(database), autocommit=True) as conn:
            cursor = conn.execute(sql)
            return cursor.fetchall() if cursor.description else []


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def megabytes(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB"


class Drill:
    def __init__(self, args: argparse.Namespace, cluster: Cluster) -> None:
        self.args = args
        self.cluster = cluster
        self.work = cluster.work
        self.figures: dict[str, object] = {}
        self.differences: list[str] = []
        # Production mode, as the README documents it: no development defaults.
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith(("PROMETHEUS_", "DJANGO_"))
        }
        self.env.update(
            DEBUG="0",
            DATABASE_URL=cluster.url(),
            SECRET_KEY=secrets.token_urlsafe(50),
            AUDIT_HMAC_KEY=secrets.token_urlsafe(32),
        )

    # --- steps -------------------------------------------------------------------------

    def manage(self, *args: str, stdout: Path | None = None, check: bool = True) -> int:
        log = (self.work / "manage.log").open("a")
        out = stdout.open("w") if stdout else log
        try:
            code = subprocess.run(
                [str(PYTHON), "manage.py", *args], cwd=ROOT, env=self.env, stdout=out, stderr=log
            ).returncode
        finally:
            log.close()
            if stdout:
                out.close()
        if check and code != 0:
            tail = (self.work / "manage.log").read_text()[-3000:]
            raise DrillError(f"manage.py {' '.join(args)} exited {code}:\n{tail}")
        return code

    def load(self, phase: int) -> Path:
        acks = self.work / f"acks-phase{phase}.jsonl"
        say(f"load phase {phase}: manage.py simulate --ops {self.args.ops} --workers 4")
        self.manage(
            "simulate",
            f"--seed={self.args.seed + phase}",
            f"--ops={self.args.ops}",
            "--workers=4",
            "--no-progress",
            f"--ack-log={acks}",
        )
        return acks

    def base_backup(self) -> None:
        say("base backup: pg_basebackup (WAL streamed alongside)")
        backup = self.work / "base-backup"
        started = time.monotonic()
        self.cluster.run(
            str(self.cluster.bin / "pg_basebackup"), "-h", "127.0.0.1", "-p",
            str(self.cluster.port), "-U", "postgres", "-D", str(backup), "-X", "stream",
            "-c", "fast", "--no-password",
        )  # fmt: skip
        self.figures["backup_seconds"] = round(time.monotonic() - started, 2)
        self.figures["backup_size"] = folder_bytes(backup)

    def checkpoint_and_target(self) -> str:
        say("checkpoint: verify_ledger --json; then the target time")
        checkpoint = self.work / "checkpoint.json"
        self.manage("verify_ledger", "--json", "--no-progress", stdout=checkpoint)
        time.sleep(1.0)
        (target,) = self.cluster.query("SELECT clock_timestamp()::text")[0]
        if self.args.target_inside_load:
            start, end = self.phase2_window
            (target,) = self.cluster.query(
                f"SELECT ('{start}'::timestamptz + ('{end}'::timestamptz - '{start}') / 2)::text"
            )[0]
            say(f"--target-inside-load: target moved into phase 2, to {target}")
        time.sleep(1.0)
        return target

    def archive_last_wal(self) -> None:
        (segment,) = self.cluster.query("SELECT pg_walfile_name(pg_switch_wal())")[0]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if (self.cluster.archive / segment).exists():
                return
            time.sleep(0.2)
        raise DrillError(f"WAL segment {segment} was not archived within 60 s")

    def destroy(self) -> dict[str, int]:
        before = self.row_counts()
        say("disaster: stopping the cluster (immediate) and deleting its data directory")
        self.cluster.stop("immediate")
        self.cluster.run("rm", "-rf", str(self.cluster.data))
        return before

    def restore(self, target: str) -> None:
        say(f"restore: base backup + archived WAL up to {target}")
        started = time.monotonic()
        self.cluster.run("cp", "-a", str(self.work / "base-backup"), str(self.cluster.data))
        self.cluster.configure(
            {
                "restore_command": f"'cp {self.cluster.archive}/%f %p'",
                "recovery_target_time": f"'{target}'",
                "recovery_target_action": "'promote'",
            }
        )
        self.cluster.run("touch", str(self.cluster.data / "recovery.signal"))
        self.cluster.start()
        deadline = time.monotonic() + 300
        while self.cluster.query("SELECT pg_is_in_recovery()", "postgres")[0][0]:
            if time.monotonic() > deadline:
                raise DrillError("the restored cluster did not finish recovery within 300 s")
            time.sleep(0.2)
        self.figures["restore_seconds"] = round(time.monotonic() - started, 2)

    # --- proof -----------------------------------------------------------------------------

    def row_counts(self) -> dict[str, int]:
        tables = {
            "transactions": "wallet_transaction",
            "audit_events": "audit_auditevent",
            "jobs": "jobs_job",
            "wallets": "wallet_wallet",
        }
        return {
            name: self.cluster.query(f"SELECT count(*) FROM {table}")[0][0]
            for name, table in tables.items()
        }

    @staticmethod
    def acknowledged(paths: list[Path]) -> tuple[set[int], int]:
        """Ids of the ledger rows operations were answered with, and how many answers."""
        rows, answers = set(), 0
        for path in paths:
            for line in path.read_text().splitlines():
                outcome = json.loads(line)
                if outcome["status"] in ("applied", "replayed"):
                    answers += 1
                    rows.update(outcome.get("rows", []))
        return rows, answers

    def prove(self, before_target: list[Path], after_target: list[Path]) -> None:
        say("proof: verify_ledger, verify_ledger --checkpoint, acknowledged operations")
        if self.manage("verify_ledger", "--no-progress", check=False) != 0:
            self.differences.append("verify_ledger reports findings on the restored database")
        checkpoint = str(self.work / "checkpoint.json")
        output = self.work / "verify-checkpoint.txt"
        code = self.manage(
            "verify_ledger",
            "--no-progress",
            f"--checkpoint={checkpoint}",
            stdout=output,
            check=False,
        )
        if code != 0:
            self.differences.append(f"verify_ledger --checkpoint failed:\n{output.read_text()}")
        kept, kept_answers = self.acknowledged(before_target)
        lost, lost_answers = self.acknowledged(after_target)
        present = {
            row[0]
            for row in self.cluster.query(
                "SELECT id FROM wallet_transaction WHERE status = 'success'"
            )
        }
        every = {row[0] for row in self.cluster.query("SELECT id FROM wallet_transaction")}
        missing, resurrected, unexplained = kept - present, lost & every, every - kept
        self.figures.update(
            acknowledged_before_target=kept_answers,
            acknowledged_rows_before_target=len(kept),
            acknowledged_after_target=lost_answers,
            acknowledged_rows_after_target=len(lost),
        )
        if missing:
            self.differences.append(
                f"{len(missing)} row(s) acknowledged before the target are missing: "
                f"{sorted(missing)[:20]}"
            )
        if resurrected:
            self.differences.append(
                f"{len(resurrected)} row(s) acknowledged after the target are present: "
                f"{sorted(resurrected)[:20]}"
            )
        if unexplained:
            self.differences.append(
                f"{len(unexplained)} restored row(s) no operation was acknowledged with: "
                f"{sorted(unexplained)[:20]}"
            )

    # --- the whole drill -----------------------------------------------------------------

    def run(self) -> int:
        cluster = self.cluster
        say(f"throwaway cluster in {self.work} on port {cluster.port} (PostgreSQL {cluster.bin})")
        cluster.init()
        cluster.start()
        cluster.query(f"CREATE DATABASE {DATABASE}", "postgres")
        say("migrate")
        self.manage("migrate", "--no-input")
        phase1 = self.load(1)
        self.base_backup()
        (start,) = cluster.query("SELECT clock_timestamp()::text")[0]
        phase2 = self.load(2)
        (end,) = cluster.query("SELECT clock_timestamp()::text")[0]
        self.phase2_window = (start, end)
        target = self.checkpoint_and_target()
        phase3 = self.load(3)
        self.archive_last_wal()
        self.figures["wal_archive_size"] = folder_bytes(cluster.archive)
        before = self.destroy()
        self.restore(target)
        after = self.row_counts()
        self.prove([phase1, phase2], [phase3])
        self.summary(target, before, after)
        return 1 if self.differences else 0

    def summary(self, target: str, before: dict[str, int], after: dict[str, int]) -> None:
        f = self.figures
        print("\n=== dr-drill summary ===")
        print(f"target time                 {target}")
        print(
            f"base backup size            {megabytes(f['backup_size'])} ({f['backup_seconds']} s)"
        )
        print(f"WAL archived                {megabytes(f['wal_archive_size'])}")
        print(
            f"restore time                {f['restore_seconds']} s (copy + WAL replay to promote)"
        )
        print("rows                        before disaster -> restored (to the target)")
        for name in before:
            print(f"  {name:<26}{before[name]:>8} -> {after[name]}")
        print(
            f"acknowledged before target  {f['acknowledged_before_target']} operations, "
            f"{f['acknowledged_rows_before_target']} ledger rows: all must be present"
        )
        print(
            f"acknowledged after target   {f['acknowledged_after_target']} operations, "
            f"{f['acknowledged_rows_after_target']} ledger rows: none may be present"
        )
        if self.differences:
            print(f"RESULT: FAILED, {len(self.differences)} difference(s):")
            for difference in self.differences:
                print(f"  - {difference}")
        else:
            print("RESULT: OK, verify_ledger clean, checkpoint holds, no difference")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=int(os.environ.get("DRILL_OPS", 400)))
    parser.add_argument("--seed", type=int, default=int(os.environ.get("DRILL_SEED", 2026)))
    parser.add_argument("--keep", action="store_true", help="keep the folder (cluster stopped)")
    parser.add_argument(
        "--target-inside-load",
        action="store_true",
        help="restore to the middle of phase 2 instead (operations acknowledged before the "
        "checkpoint get lost): to watch the drill catch a restore that lost data",
    )
    args = parser.parse_args()
    runas: list[str] = []
    work = Path(tempfile.mkdtemp(prefix="dw-dr-drill-"))
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(work, "postgres")
        runas = ["runuser", "-u", "postgres", "--"]
    cluster = Cluster(pg_bin_dir(), work, free_port(), runas)
    try:
        return Drill(args, cluster).run()
    except Exception as exc:  # DrillError, or anything unexpected: never a silent pass
        print(f"dr-drill could not run: {type(exc).__name__}: {exc}", file=sys.stderr)
        if cluster.log.exists():
            print(cluster.log.read_text()[-2000:], file=sys.stderr)
        return 2
    finally:
        cluster.stop("immediate")
        if args.keep:
            say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
