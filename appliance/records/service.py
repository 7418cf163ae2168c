"""The records service: every action on the bench, checked and audited, in one place.

The command line and the app call `Records` and nothing below it for anything
that needs a permission. Each method checks the acting user's role against
`PERMISSIONS` first (`AccessControl.require`, which also explains the open bench
of a new appliance); a refusal is written to the audit trail and raised as
`PermissionDenied`. Work that changes the records commits together with its
audit row.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.calibrations import calibrate_rig, current_calibration
from appliance.classifier import SeedClassifier
from appliance.exports import ExportFormat
from appliance.inspection import Progress
from appliance.recipes import Recipe
from appliance.records.access import AccessControl
from appliance.records.accounts import Action, Actor
from appliance.records.amendments import AmendmentRecord, amend_seed_class
from appliance.records.audit import AuditReport, sample_content_sha256, verify_audit
from appliance.records.exporting import (
    ExportSelection,
    SignedExport,
    select_samples,
    write_signed_export,
)
from appliance.records.signing import (
    ApplianceKey,
    SignatureError,
    Verification,
    find_manifest,
    key_path,
    load_or_create_key,
    load_public_key,
    read_manifest,
    verify_export,
)
from appliance.rigs import Ask, RigHandle
from appliance.samples import (
    InspectedSample,
    SampleInfo,
    StoredSample,
    capture_sample,
    save_inspected,
)
from appliance.store.models import AuditEntry, Calibration
from calibration import CalibrationError, CalibrationRecord

log = logging.getLogger(__name__)


class Records(AccessControl):
    """The bench's records, with permissions enforced and every action audited.

    Sign-in and accounts come from `AccessControl`; this adds the rig's work
    (calibration, capture), the QA lead's (amendments, signed exports) and the
    checks (audit trail, exported files).

    Parameters
    ----------
    db : Database
        The open database.
    images : ImageStore
        The image store of the same data directory.
    settings : Settings
        Where the data directory (and the signing key in it) is, and the lab name.
    """

    # Rig work

    def calibrate(
        self, actor: Actor, handle: RigHandle, *, ask: Ask | None = None
    ) -> tuple[int, CalibrationRecord]:
        """Calibrate the rig and store the new version (engineers only)."""
        self.require(actor, Action.CALIBRATE, f"rig:{handle.rig.name}")
        return self._calibrate(actor, handle, ask=ask, automatic=False)

    def _calibrate(
        self, actor: Actor, handle: RigHandle, *, ask: Ask | None, automatic: bool
    ) -> tuple[int, CalibrationRecord]:
        def audit_calibration(session: Session, calibration_id: int) -> None:
            stored = session.get(Calibration, calibration_id)
            assert stored is not None
            self._audit(
                actor,
                "calibrate",
                subject=f"calibration:{calibration_id}",
                details={
                    "rig": handle.rig.name,
                    "version": stored.version,
                    "residual_px": round(stored.residual_px, 4),
                    "record_sha256": stored.record_sha256,
                    "automatic": automatic,
                },
                session=session,
            )

        return calibrate_rig(
            handle,
            self.db,
            self.images,
            self.settings,
            ask=ask,
            after_save=audit_calibration,
        )

    def calibration_for_capture(
        self, actor: Actor, handle: RigHandle
    ) -> tuple[int, CalibrationRecord]:
        """Return the rig's calibration; calibrate a simulated rig that has none.

        A simulated rig's calibration is computed from its own renderings, with no
        work at the bench, so whoever may capture may have it made (audited as an
        automatic calibration). A real rig needs an engineer's `calibrate`.
        """
        try:
            return current_calibration(self.db, self.images, handle.rig.name)
        except CalibrationError:
            if handle.kind != "simulated":
                raise
        self.require(actor, Action.CAPTURE, f"rig:{handle.rig.name}")
        log.info("rig %s has no calibration yet: calibrating it now", handle.rig.name)
        return self._calibrate(actor, handle, ask=None, automatic=True)

    def capture(
        self,
        actor: Actor,
        handle: RigHandle,
        info: SampleInfo,
        *,
        calibration: tuple[int, CalibrationRecord],
        classifier: SeedClassifier | None,
        recipe: Recipe | None,
        ask: Ask | None = None,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
    ) -> StoredSample:
        """Capture, measure and store one sample; its audit row commits with it.

        A signed-in operator is recorded as the sample's operator, whatever name
        `info` carries.
        """
        self.require(actor, Action.CAPTURE, f"lot:{info.lot}")
        if actor.registered:
            info = replace(info, operator=actor.name)
        return capture_sample(
            handle,
            calibration,
            self.db,
            self.images,
            info,
            classifier=classifier,
            recipe=recipe,
            ask=ask,
            progress=progress,
            cancel=cancel,
            after_save=self._capture_auditor(actor, info, calibration[0], classifier),
        )

    def accept(
        self,
        actor: Actor,
        inspected: InspectedSample,
        *,
        classifier: SeedClassifier | None,
    ) -> StoredSample:
        """Store a measured sample the operator accepted, with its audit row.

        A signed-in operator is recorded as the sample's operator.
        """
        info = inspected.info
        self.require(actor, Action.CAPTURE, f"lot:{info.lot}")
        if actor.registered and info.operator != actor.name:
            info = replace(info, operator=actor.name)
            sample = {**inspected.report["sample"], "operator": actor.name}
            inspected = replace(
                inspected, info=info, report={**inspected.report, "sample": sample}
            )
        auditor = self._capture_auditor(
            actor, info, inspected.calibration_id, classifier
        )
        return save_inspected(self.db, self.images, inspected, after_save=auditor)

    def _capture_auditor(
        self,
        actor: Actor,
        info: SampleInfo,
        calibration_id: int,
        classifier: SeedClassifier | None,
    ) -> Callable[[Session, int], None]:
        """Return what writes a capture's audit row inside the sample's transaction.

        The row records the SHA-256 of the stored content, which `verify_audit`
        compares with what is stored later.
        """

        def audit_capture(session: Session, sample_id: int) -> None:
            if classifier is not None:
                self._note_model(session, actor, info.recipe, classifier)
            self._audit(
                actor,
                "capture",
                subject=f"sample:{sample_id}",
                details={
                    "lot": info.lot,
                    "code": info.code,
                    "recipe": info.recipe,
                    "operator": info.operator,
                    "calibration_id": calibration_id,
                    "model_sha256": None
                    if classifier is None
                    else classifier.bundle.sha256,
                    "content_sha256": sample_content_sha256(session, sample_id),
                },
                session=session,
            )

        return audit_capture

    def _note_model(
        self, session: Session, actor: Actor, recipe: str, classifier: SeedClassifier
    ) -> None:
        """Audit a model change: the first capture with a bundle not seen before."""
        subject = f"recipe:{recipe}"
        last = session.scalars(
            select(AuditEntry)
            .where(AuditEntry.action == "model_change", AuditEntry.subject == subject)
            .order_by(AuditEntry.id.desc())
            .limit(1)
        ).one_or_none()
        sha = classifier.bundle.sha256
        if last is not None and json.loads(last.details).get("sha256") == sha:
            return
        # Limitation: a bundle installed by `seedqa-models` is recorded here, at
        # the first capture that uses it, under the capturing user's name.
        info = classifier.bundle.info
        self._audit(
            actor,
            "model_change",
            subject=subject,
            details={"sha256": sha, "name": info.name, "version": info.version},
            session=session,
        )

    # The QA lead's work

    def amend(
        self,
        actor: Actor,
        sample_id: int,
        *,
        seed_index: int,
        new_class: str,
        reason: str,
    ) -> AmendmentRecord:
        """Change one seed's class with a reason; the sample's report goes up a version.

        Raises
        ------
        PermissionDenied
            If `actor` is not a signed-in QA lead.
        SampleNotFound, AmendmentError
            If the sample, seed, class or reason is not acceptable.
        """
        subject = f"sample:{sample_id}"
        self.require(actor, Action.AMEND, subject)
        assert actor.user_id is not None  # `require` refuses unregistered actors
        with self.db.session() as session:
            amendment = amend_seed_class(
                session,
                sample_id=sample_id,
                seed_index=seed_index,
                new_class=new_class,
                reason=reason,
                user_id=actor.user_id,
            )
            self._audit(
                actor,
                "amend",
                subject=subject,
                details={
                    **amendment.to_json(),
                    "content_sha256": sample_content_sha256(session, sample_id),
                },
                session=session,
            )
        return amendment

    def export(
        self,
        actor: Actor,
        selection: ExportSelection,
        *,
        formats: Sequence[ExportFormat],
        out: Path,
    ) -> SignedExport:
        """Export the selected samples' reports into `out`, signed.

        Raises
        ------
        PermissionDenied
            If `actor` may not export.
        ExportError, SampleNotFound
            If the selection is empty or `out` is not a new or empty folder.
        """
        self.require(actor, Action.EXPORT, selection.subject)
        sample_ids = select_samples(self.db, selection)
        key = self.signing_key()
        export = write_signed_export(
            self.db,
            self.images,
            sample_ids,
            formats=formats,
            out=out,
            key=key,
            lab=self.settings.lab,
            issued_by=actor.name,
        )
        self._audit(
            actor,
            "export",
            subject=selection.subject,
            details={
                "samples": list(export.samples),
                "files": [p.name for p in export.files],
                "formats": list(formats),
                "key": key.fingerprint,
            },
        )
        return export

    # Checking

    def signing_key(self) -> ApplianceKey:
        """Return the appliance's signing key, made on first use."""
        return load_or_create_key(self.settings.data_dir)

    def verify_audit(self, *, manifests: Sequence[Path] = ()) -> AuditReport:
        """Check the audit trail and every stored sample against it.

        Parameters
        ----------
        manifests : sequence of Path
            Signed export manifests (or their folders or files) whose recorded
            audit head must still be in the trail; each is checked against this
            appliance's key first.

        Raises
        ------
        SignatureError
            If a manifest is not genuine: its audit head cannot be trusted.
        """
        anchors = []
        for path in manifests:
            verification = self.verify_export(find_manifest(path))
            if not verification.ok:
                raise SignatureError(
                    f"{verification.manifest} is not genuine "
                    f"({verification.problems[0]}); its audit head proves nothing"
                )
            head = read_manifest(verification.manifest).get("audit_head")
            if head:
                anchors.append((int(head["row"]), str(head["row_hash"])))
        return verify_audit(self.db, anchors=anchors)

    def verify_export(self, path: Path, *, key: Path | None = None) -> Verification:
        """Check an exported file against its signed manifest.

        Parameters
        ----------
        path : Path
            An exported file, its folder or its manifest.
        key : Path, optional
            A public key file (PEM) to trust; by default this appliance's key.

        Raises
        ------
        SignatureError
            If there is no manifest, or no key to check it with.
        """
        manifest = find_manifest(path)
        if not manifest.is_file():
            raise SignatureError(
                f"no {manifest.name} beside {path}: a signed export keeps its "
                "manifest in the folder of its files; nothing to check against"
            )
        if key is not None:
            trusted = load_public_key(key)
        elif key_path(self.settings.data_dir).exists():
            trusted = self.signing_key().public
        else:
            raise SignatureError(
                "this appliance has no signing key yet; pass the signing appliance's "
                "public key with --key FILE (`seedqa report key` prints it there)"
            )
        return verify_export(path, trusted)
