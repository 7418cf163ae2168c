"""Cost of the records: audit rows, chain verification, PIN hashing, signing.

Each figure is compared with a baseline run in the same process on the same
machine: a plain row insert for the audit append, a plain read of the rows for
the chain check, a bare SHA-256 of the file for sign-and-verify.

    PYTHONPATH=. python bench/records.py [--rows 2000]
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from pathlib import Path

from sqlalchemy import text

from appliance.records.accounts import hash_pin
from appliance.records.audit import append_entry, verify_audit
from appliance.records.signing import load_or_create_key, verify_export, write_manifest
from appliance.store import Database, sqlite_url


def _timed(work) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000, help="audit rows (2000)")
    args = parser.parse_args()
    n = args.rows

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        db = Database.open(sqlite_url(root / "seedqa.db"))
        with db.session() as session:
            session.execute(text("CREATE TABLE plain (id INTEGER PRIMARY KEY, t TEXT)"))

        def append() -> None:
            for i in range(n):
                with db.session() as session:
                    append_entry(
                        session,
                        actor="olga",
                        role="operator",
                        action="capture",
                        subject=f"lot:L-{i}",
                        details={"i": i},
                    )

        def plain_insert() -> None:
            for i in range(n):
                with db.session() as session:
                    session.execute(
                        text("INSERT INTO plain (t) VALUES (:t)"), {"t": f"lot:L-{i}"}
                    )

        def plain_read() -> None:
            with db.session() as session:
                session.execute(text("SELECT * FROM audit_log")).fetchall()

        t_append, t_insert = _timed(append), _timed(plain_insert)
        report = verify_audit(db)
        assert report.ok and report.rows == n
        t_verify = _timed(lambda: verify_audit(db))
        t_read = _timed(plain_read)
        db.close()

        t_pin = min(_timed(lambda: hash_pin("1234")) for _ in range(5))

        blob = root / "out" / "sample-1-v1.pdf"
        blob.parent.mkdir()
        blob.write_bytes(bytes(range(256)) * (5 * 4096))  # 5 MiB
        key = load_or_create_key(root / "data")
        t_sha = _timed(lambda: hashlib.sha256(blob.read_bytes()).hexdigest())

        def sign_and_verify() -> None:
            write_manifest(blob.parent, [blob.name], key, samples=[], audit_head=None)
            assert verify_export(blob, key.public).ok

        t_sign = _timed(sign_and_verify)

    print(
        f"audit append     {1e3 * t_append / n:7.2f} ms/row  "
        f"(plain insert {1e3 * t_insert / n:.2f} ms/row, x{t_append / t_insert:.2f})"
    )
    print(
        f"audit verify     {1e3 * t_verify / n:7.3f} ms/row  "
        f"(plain read {1e3 * t_read / n:.3f} ms/row, x{t_verify / t_read:.1f}); "
        f"{n} rows in {t_verify:.2f} s"
    )
    print(f"PIN hash/check   {1e3 * t_pin:7.1f} ms      (scrypt n=2^14 r=8 p=1)")
    print(
        f"sign + verify    {1e3 * t_sign:7.1f} ms      for a 5 MiB file "
        f"(bare SHA-256 {1e3 * t_sha:.1f} ms, x{t_sign / t_sha:.1f})"
    )


if __name__ == "__main__":
    main()
