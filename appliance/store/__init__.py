"""Database storage.

Samples, captures, seeds, calibrations and labelling rounds live in a SQL database
(SQLite by default, WAL journal, foreign keys on; any SQLAlchemy URL works) migrated
by Alembic; images live beside it as files named by their SHA-256.
"""

from appliance.store.db import (
    Database,
    alembic_config,
    create_engine_for,
    sqlite_url,
    upgrade,
    upgrade_engine,
)
from appliance.store.images import (
    ImageEncodeError,
    ImageNotFound,
    ImageStore,
    check_sha256,
    decode_png,
    encode_png,
)
from appliance.store.labelling import (
    ItemInput,
    ItemRecord,
    LabelRecord,
    RoundNotFound,
    RoundRecord,
    create_round,
    get_round,
    list_rounds,
    record_accuracy,
    submit_labels,
    training_labels,
)
from appliance.store.repository import (
    CalibrationEntry,
    CalibrationNotFound,
    CaptureInput,
    CaptureRecord,
    RigMismatch,
    SampleListing,
    SampleNotFound,
    SampleRecord,
    SeedRecord,
    get_calibration,
    get_sample,
    latest_calibration,
    list_samples,
    save_calibration,
    save_sample,
)

__all__ = [
    "CalibrationEntry",
    "CalibrationNotFound",
    "CaptureInput",
    "CaptureRecord",
    "Database",
    "ImageEncodeError",
    "ImageNotFound",
    "ImageStore",
    "ItemInput",
    "ItemRecord",
    "LabelRecord",
    "RoundNotFound",
    "RoundRecord",
    "RigMismatch",
    "SampleListing",
    "SampleNotFound",
    "SampleRecord",
    "SeedRecord",
    "alembic_config",
    "check_sha256",
    "create_engine_for",
    "create_round",
    "decode_png",
    "encode_png",
    "get_calibration",
    "get_round",
    "get_sample",
    "latest_calibration",
    "list_rounds",
    "list_samples",
    "record_accuracy",
    "save_calibration",
    "save_sample",
    "sqlite_url",
    "submit_labels",
    "training_labels",
    "upgrade",
    "upgrade_engine",
]
