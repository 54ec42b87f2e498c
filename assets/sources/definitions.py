"""The sources domain in Dagster: `image_sources` (extracted in the image products' pass) and
`source_catalogue`, the op that materializes `source_associations`, `forced_photometry` and
`source_variability` for the run's days.

`image_sources` is a spec of the `image_products` multi_asset (assets/products/definitions.py):
extraction is one more consumer of the single read of each plane, after QA has graded it. The
other three are one `multi_asset` with `can_subset=True`, each an asset of its own in the
graph and the UI: each part reads what it needs from the database (a day's new sources are
those first detected that day), so selecting one of them alone works. Logic: `day.py`.
"""

import base64
import datetime as dt
from collections.abc import Iterator
from typing import Any

import dagster as dg
from PIL import Image
from pydantic import Field

from assets.partitions import (
    DAILY_OP_POLICY,
    DAILY_SPEC_POLICY,
    add_day_metadata,
    daily_check_spec,
    day_check_evaluations,
    partition_dates,
)
from assets.qa.definitions import IMAGE_QA
from assets.runtime import step_process_metadata
from assets.sources.association import AssociationConfig
from assets.sources.day import (
    AssociationReport,
    ExtractionReport,
    ForcedReport,
    VariabilityConfig,
    VariabilityReport,
    associate_day,
    force_day,
    new_sources_of_day,
    variability_day,
    variability_pictures,
    variability_verdict,
)
from assets.sources.extraction import ExtractionConfig
from assets.sources.forced import ForcedConfig
from assets.stats.plot import png_bytes
from assets.tables import row_count_metadata, table_definition_metadata
from assets.thumbnails.day import write_preview
from assets.thumbnails.render import compact_png
from resources.database import Databases
from resources.repositories.products import MEASUREMENTS, SOURCES

SOURCES_POLICY: dict[str, Any] = {**DAILY_SPEC_POLICY, "group_name": "sources"}

IMAGE_SOURCES = dg.AssetSpec(
    "image_sources",
    deps=[IMAGE_QA],
    **SOURCES_POLICY,
    kinds={"sql"},
    tags={"domain": "sources"},
    metadata=table_definition_metadata(MEASUREMENTS),
    description="Blind extraction (sep detection, background and rms maps; a Gaussian fit per "
    "source) on every image not graded `fail`, in the same read of each plane as QA and the "
    "thumbnail: positions with errors, peak and integrated fluxes (mJy), local rms, shape, "
    "SNR, in `products.measurements` (forced = false); docs/sources.md.",
)
SOURCE_ASSOCIATIONS = dg.AssetSpec(
    "source_associations",
    deps=[IMAGE_SOURCES],
    **SOURCES_POLICY,
    kinds={"sql"},
    tags={"domain": "sources"},
    metadata=table_definition_metadata(SOURCES),
    description="Each blind measurement joined to one sky source (de Ruiter radius and a beam "
    "limit, one-to-many and many-to-one recorded as relations), image by image in time order; "
    "weighted positions in `products.sources`.",
)
FORCED_PHOTOMETRY = dg.AssetSpec(
    "forced_photometry",
    deps=[SOURCE_ASSOCIATIONS],
    **SOURCES_POLICY,
    kinds={"sql"},
    tags={"domain": "sources"},
    metadata=table_definition_metadata(MEASUREMENTS),
    description="A weighted beam-kernel fit (Condon 1997) at every known source inside a day's "
    "image and not detected there, and for the day's new sources in the other days' images "
    "that cover them; close neighbours fitted together, edges skipped.",
)
SOURCE_VARIABILITY = dg.AssetSpec(
    "source_variability",
    deps=[FORCED_PHOTOMETRY],
    **SOURCES_POLICY,
    kinds={"sql"},
    tags={"domain": "sources"},
    metadata=table_definition_metadata(SOURCES),
    description="Per source touched by the day: flux statistics, V and η, the largest "
    "significant two-epoch pair (Vs, m), the new-source flag; a candidates table.",
)

EXTRACTED_CHECK = "every_graded_image_extracted"
VARIABLE_SHARE_CHECK = "variable_share_below_limit"
FORCED_CHECK = "forced_fits_converge"

IMAGE_SOURCES_CHECKS = [
    daily_check_spec(
        EXTRACTED_CHECK,
        asset="image_sources",
        blocking=True,
        description="Every image of the day graded good or warn has an extraction record.",
    )
]
VARIABILITY_CHECKS = [
    daily_check_spec(
        VARIABLE_SHARE_CHECK,
        asset="source_variability",
        blocking=False,
        description="The share of the day's sources passing the candidate cuts is under the "
        "limit (a larger share points at calibration, not at the sky).",
    )
]
FORCED_CHECKS = [
    daily_check_spec(
        FORCED_CHECK,
        asset="forced_photometry",
        blocking=False,
        description="Every forced fit on the day's images gave a finite flux and error.",
    )
]


class SourcesConfig(dg.Config):
    """Run config of the extraction (part of the image products' step)."""

    threshold_sigma: float = Field(
        default=ExtractionConfig().threshold_sigma,
        description="Detection threshold: a source's peak pixel over the local rms map.",
    )
    noise_correlation: float = Field(
        default=ExtractionConfig().noise_correlation,
        ge=0,
        description="The noise's correlation as a multiple of the beam's covariance (1: a "
        "CLEANed image); position errors are scaled by 4 sqrt(c) / (2 + c), 0 leaves Condon's "
        "errors as they are (docs/sources.md).",
    )
    force: bool = Field(default=False, description="Extract every image again.")

    def extraction(self) -> ExtractionConfig:
        return ExtractionConfig(
            threshold_sigma=self.threshold_sigma, noise_correlation=self.noise_correlation
        )


class SourceCatalogueConfig(dg.Config):
    """Run config of association, forced photometry and variability."""

    dr_limit: float = Field(default=AssociationConfig().dr_limit, description="de Ruiter limit.")
    beamwidth_limit: float = Field(
        default=AssociationConfig().beamwidth_limit,
        description="Largest separation of an association, in beam major axes.",
    )
    systematic_arcsec: float = Field(
        default=AssociationConfig().systematic_arcsec,
        description="Astrometric error added in quadrature to every measured position.",
    )
    eta_min: float = Field(default=VariabilityConfig().eta_min, description="Candidates: η ≥.")
    v_min: float = Field(default=VariabilityConfig().v_min, description="Candidates: V ≥.")
    vs_min: float = Field(
        default=VariabilityConfig().vs_min, description="Significant two-epoch |Vs| ≥."
    )
    m_min: float = Field(default=VariabilityConfig().m_min, description="Candidates: |m| ≥.")
    max_variable_fraction: float = Field(
        default=0.05, description="The variable-share check fails above this share."
    )


class ExtractionVerdict:
    """The blocking check's verdict for one day (assets.partitions.DayVerdict).

    It fails when a graded image has no extraction record: the pass lost it. An image that
    cannot be extracted (no restoring beam, no celestial WCS, an unreadable plane) has a record
    with its reason; it is counted and listed, as a failed file is at ingest, and blocks
    nothing: re-running the day would not change it.
    """

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        graded = [r for r in rows if r["grade"] in ("good", "warn")]
        missing = [r["path"] for r in graded if r["n_sources"] is None and not r["error"]]
        failed = [(r["path"], r["error"]) for r in graded if r["error"]]
        self.passed = not missing
        self.metadata = {
            "graded_images": len(graded),
            "not_extracted": len(missing),
            "not_extractable": len(failed),
            "missing_examples": dg.MetadataValue.json(missing[:10]),
            "not_extractable_examples": dg.MetadataValue.json(
                [{"path": p, "error": e} for p, e in failed[:10]]
            ),
        }
        self.description = (
            f"{len(graded) - len(missing) - len(failed)} of {len(graded)} graded images "
            f"extracted, {len(failed)} not extractable, {len(missing)} missing"
        )


def sources_day_metadata(report: ExtractionReport) -> dict[str, Any]:
    return {
        "images_extracted": report.extracted,
        "images_unchanged": report.unchanged,
        "images_graded_fail": report.failed_grade,
        "measurements": report.measurements,
        "extraction_errors": len(report.errors),
        "sources_released": report.released_sources,
        "extraction_s": round(report.seconds, 3),
    }


class _Verdict:
    def __init__(self, passed: bool, metadata: dict[str, Any], description: str) -> None:
        self.passed, self.metadata, self.description = passed, metadata, description


def _candidates_table(report: VariabilityReport) -> dg.MetadataValue:
    head = "| id | name | wavg_ra | wavg_dec | n_meas | v_int | eta_int | m | new |"
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    for c in report.candidates:
        lines.append(
            f"| {c['id']} | {c['name']} | {c['wavg_ra']:.5f} | {c['wavg_dec']:.5f} | "
            f"{c['n_meas']} | {_fmt(c['v_int'])} | {_fmt(c['eta_int'])} | "
            f"{_fmt(c['m_abs_significant_max_int'])} | {'yes' if c['new'] else ''} |"
        )
    return dg.MetadataValue.md("\n".join(lines))


def _inline_pictures(day: dt.date, pictures: dict[str, Image.Image]) -> dict[str, Any]:
    """Each picture inline (a small palette PNG in markdown) and as a file beside the day's
    previews, as the stats plot is."""
    out: dict[str, Any] = {}
    for name, picture in pictures.items():
        path = write_preview(png_bytes(picture), day, name.replace("_", "-"))
        preview = base64.b64encode(compact_png(picture, colors=32)).decode("ascii")
        out[name] = dg.MetadataValue.md(
            f"![{name}](data:image/png;base64,{preview})\n\nFull size: `{path}`"
        )
    return out


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.3g}"


@dg.multi_asset(
    name="source_catalogue",
    specs=[SOURCE_ASSOCIATIONS, FORCED_PHOTOMETRY, SOURCE_VARIABILITY],
    check_specs=[*FORCED_CHECKS, *VARIABILITY_CHECKS],
    can_subset=True,
    **DAILY_OP_POLICY,
    description="Association, forced photometry and variability of the run's observation days, "
    "day by day in date order.",
)
def source_catalogue(
    context: dg.AssetExecutionContext,
    config: SourceCatalogueConfig,
    database: dg.ResourceParam[Databases],
) -> Iterator[dg.MaterializeResult | dg.AssetCheckEvaluation | dg.Output]:
    selected = context.selected_asset_keys
    association = AssociationConfig(
        dr_limit=config.dr_limit,
        beamwidth_limit=config.beamwidth_limit,
        systematic_arcsec=config.systematic_arcsec,
    )
    cuts = VariabilityConfig(
        eta_min=config.eta_min, v_min=config.v_min, vs_min=config.vs_min, m_min=config.m_min
    )
    forced_verdicts: dict[dt.date, dict[str, _Verdict]] = {}
    variability_verdicts: dict[dt.date, dict[str, _Verdict]] = {}
    for day in partition_dates(context):
        touched: set[int] = set()
        assoc: AssociationReport | None = None
        if SOURCE_ASSOCIATIONS.key in selected:
            assoc = associate_day(database, day, association)
            touched.update(assoc.touched_source_ids)
            add_day_metadata(
                context,
                day,
                {
                    "images": assoc.images,
                    "measurements_associated": assoc.measurements,
                    "new_sources": assoc.new_sources,
                    "basic": assoc.basic,
                    "one_to_many": assoc.one_to_many,
                    "many_to_one": assoc.many_to_one,
                    "relations": assoc.relations,
                    "sources_removed": assoc.removed_sources,
                    "catalogue_sources_in_band": assoc.catalogue_sources,
                    "association_s": round(assoc.seconds, 3),
                    **row_count_metadata(database, SOURCES, day),
                },
                asset_key=SOURCE_ASSOCIATIONS.key,
            )
        new_ids = assoc.new_source_ids if assoc is not None else new_sources_of_day(database, day)
        if FORCED_PHOTOMETRY.key in selected:
            forced: ForcedReport = force_day(database, day, new_ids, ForcedConfig())
            touched.update(forced.touched_source_ids)
            for path, why in forced.unreadable[:20]:
                context.log.warning(f"forced photometry skipped {path}: {why}")
            add_day_metadata(
                context,
                day,
                {
                    "forced_today": forced.forced_today,
                    "forced_backwards": forced.forced_backwards,
                    "skipped_near_edge": forced.skipped_edge,
                    "images_read": forced.images_read,
                    "not_converged": forced.not_converged,
                    "unreadable_images": len(forced.unreadable),
                    "forced_s": round(forced.seconds, 3),
                    **row_count_metadata(database, MEASUREMENTS, day),
                },
                asset_key=FORCED_PHOTOMETRY.key,
            )
            forced_verdicts[day] = {
                FORCED_CHECK: _Verdict(
                    forced.not_converged == 0 and not forced.unreadable,
                    {"not_converged": forced.not_converged, "unreadable": len(forced.unreadable)},
                    f"{forced.forced_today + forced.forced_backwards} forced fits, "
                    f"{forced.not_converged} without a finite flux",
                )
            }
        if SOURCE_VARIABILITY.key in selected:
            var = variability_day(database, day, touched, new_ids, cuts)
            passed, share, meta = variability_verdict(
                database, day, cuts, config.max_variable_fraction
            )
            var.candidates = meta.pop("candidates")
            pictures = variability_pictures(database, day, cuts, var.candidates)
            add_day_metadata(
                context,
                day,
                {
                    "sources_updated": var.sources_updated,
                    "measurements_read": var.measurements_read,
                    "new_sources_flagged": var.new_sources,
                    "candidates": len(var.candidates),
                    "top_candidates": _candidates_table(var),
                    "variability_s": round(var.seconds, 3),
                    **meta,
                    **_inline_pictures(day, pictures),
                },
                asset_key=SOURCE_VARIABILITY.key,
            )
            variability_verdicts[day] = {
                VARIABLE_SHARE_CHECK: _Verdict(
                    passed,
                    {"variable_share": round(share, 4), "limit": config.max_variable_fraction},
                    f"{share:.1%} of the day's sources pass the candidate cuts",
                )
            }
    for spec in (SOURCE_ASSOCIATIONS, FORCED_PHOTOMETRY, SOURCE_VARIABILITY):
        if spec.key in selected:
            yield dg.MaterializeResult(asset_key=spec.key, metadata=step_process_metadata())
    if forced_verdicts:
        yield from day_check_evaluations(
            context, FORCED_PHOTOMETRY.key, FORCED_CHECKS, forced_verdicts
        )
    if variability_verdicts:
        yield from day_check_evaluations(
            context, SOURCE_VARIABILITY.key, VARIABILITY_CHECKS, variability_verdicts
        )
