"""What sealing secrets at rest (R32) costs an event, beside the plain mapping.

    python benchmarks/bench_secrets.py [--n 20000]

Times the mapper's encoding and decoding of a ``LicenseAdded`` carrying a
license key with a data key (AES-256-GCM per secret field) and, in the same
run, the same event's plain mapping (what it cost before R32: the raw
baseline). A command saves its events in about a millisecond (see
bench_commands.py), so the figure to compare is the added microseconds.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import orjson

from esmc_licensing.adapters.field_cipher import FieldCipher, process_keyring
from esmc_licensing.adapters.mapper import ENCODERS, EventMapper
from esmc_licensing.domain.events import LicenseAdded
from esmc_licensing.domain.ids import LicenseKey, PoolId, PublicId
from esmc_licensing.domain.values import LicenseType, Source


def best_of(rounds: int, n: int, work: Callable[[], object]) -> float:
    """Microseconds per call, the best of ``rounds`` runs of ``n`` calls."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            work()
        times.append((time.perf_counter() - start) / n * 1e6)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="calls per measurement")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    event = LicenseAdded(
        originator_id=uuid.uuid4(),
        originator_version=1,
        timestamp=datetime.now(UTC),
        actor="user:bench",
        public_id=PublicId("3AB-C12-D34"),
        pool_id=PoolId(str(uuid.uuid4())),
        source=Source.LICENSE_KEY,
        license_type=next(iter(LicenseType)),
        product="ESET Endpoint Security",
        product_code="EES",
        units=10,
        offline_units=0,
        subunits=0,
        expires=None,
        subscription=False,
        owner="Acme",
        contact="",
        license_user="",
        registered=True,
        registration_url=None,
        suspended=False,
        obsolete=False,
        used_units=0,
        key=LicenseKey("ABCD-EFGH-IJKL-MNOP-QRST"),
    )
    topic, encode = ENCODERS[LicenseAdded]
    plain_mapper, sealed = EventMapper(), EventMapper(secrets=FieldCipher(process_keyring()))
    plain_row, sealed_row = orjson.dumps(encode(event)), sealed.to_row(event)[1]
    oid = event.originator_id

    def measure(work: Callable[[], object]) -> float:
        return best_of(args.rounds, args.n, work)

    raw_encode = measure(lambda: orjson.dumps(encode(event)))
    encode_sealed = measure(lambda: sealed.to_row(event))
    raw_decode = measure(lambda: plain_mapper.decode_state(topic, orjson.loads(plain_row), oid, 1))
    decode_sealed = measure(lambda: sealed.decode_state(topic, orjson.loads(sealed_row), oid, 1))
    print(f"n={args.n}, rounds={args.rounds} (best)")
    for what, raw, with_secret in (
        ("encode", raw_encode, encode_sealed),
        ("decode", raw_decode, decode_sealed),
    ):
        print(
            f"LicenseAdded {what}: plain {raw:6.1f} us, sealed {with_secret:6.1f} us "
            f"(+{with_secret - raw:.1f} us, ratio {with_secret / raw:.2f})"
        )


if __name__ == "__main__":
    main()
