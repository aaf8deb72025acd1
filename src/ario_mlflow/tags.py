"""Names of the MLflow tags this package writes (reference §3), in one place."""

from __future__ import annotations

# Runs, model versions and traces
PUBLIC_KEY = "ario.public_key"
VERIFY_STATUS = "ario.verify_status"
PAYLOAD_HASH = "ario.payload_hash"
ARTIFACT_HASH = "ario.artifact_hash"
ARWEAVE_URL = "ario.arweave_url"
WALLET_MODE = "ario.wallet_mode"
WALLET_TYPE = "ario.wallet_type"
#: TX id of a record that is signed and journaled but not confirmed uploaded yet.
QUEUED_TX = "ario.queued_tx"

# Training runs
TRAINING_TX = "ario.training_tx"
DATASET_TX_PREFIX = "ario.dataset_anchor_tx."

# Registered models (chain head of the training chain)
LAST_TRAINING_HASH = "ario.last_training_hash"

# Model versions
REGISTRATION_TX = "ario.registration_tx"
ARTIFACT_VERIFIED = "ario.artifact_verified"
PROMOTION_PAYLOAD_HASH = "ario.promotion_payload_hash"
PROMOTION_TX = "ario.promotion_tx"
ALIAS_TX_PREFIX = "ario.alias_tx."

# Prediction traces
PAYLOAD_JSON = "ario.payload_json"
DECISION_ID = "ario.decision_id"
MODEL_NAME = "ario.model_name"
MODEL_VERSION = "ario.model_version"
INPUT_HASH = "ario.input_hash"
OUTPUT_HASH = "ario.output_hash"
PROOF_STATUS = "ario.proof_status"
PREDICTION_TX = "ario.prediction_tx"
LEGACY_PREDICTION_TX = "ario.arweave_tx"

# Verification write-back (CLI)
ATTESTATION_LEVEL = "ario.attestation_level"
REPORT_URL = "ario.report_url"
ATTESTED_BY = "ario.attested_by"
ATTESTED_AT = "ario.attested_at"

# Statuses
SIGNED = "signed"
ANCHORED = "anchored"
VERIFIED = "verified"
