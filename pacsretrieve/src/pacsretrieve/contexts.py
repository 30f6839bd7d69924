"""The presentation contexts of a C-GET: the retrieve model and storage with roles.

With C-GET the PACS stores the instances back over our own association, so we
propose a storage context for each SOP class the series hold, and take the SCP
role for it (PS3.7 D.3.3.4). Each transfer syntax gets a context of its own, so
that the PACS can send every instance as it is stored, without transcoding.
"""

import logging

from pydicom.uid import (
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import build_context, build_role
from pynetdicom.pdu_primitives import SCP_SCU_RoleSelectionNegotiation
from pynetdicom.presentation import PresentationContext

from pacscommon.errors import InputError
from pacsretrieve.move import GET_MODEL

logger = logging.getLogger(__name__)

# PS3.8 9.3.2.2: at most 128 presentation contexts, one taken by the model.
MAX_CONTEXTS = 128

UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
TRANSFER_SYNTAXES: tuple[UID, ...] = (
    *UNCOMPRESSED,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    JPEG2000Lossless,
    JPEG2000,
    RLELossless,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
)

# How many SOP classes can each have a context per transfer syntax.
CLASSES_IN_EVERY_SYNTAX = (MAX_CONTEXTS - 1) // len(TRANSFER_SYNTAXES)


def get_contexts(sop_classes: set[str]) -> list[PresentationContext]:
    """Return the model's context and storage contexts for ``sop_classes``."""
    classes = sorted(sop_classes)
    room = MAX_CONTEXTS - 1
    if len(classes) * len(TRANSFER_SYNTAXES) <= room:
        storage = [
            build_context(uid, syntax)
            for uid in classes
            for syntax in TRANSFER_SYNTAXES
        ]
    elif len(classes) <= room:
        # Too many for one context each: one per class, every syntax offered,
        # and the PACS transcodes what it stored otherwise.
        logger.warning(
            "%d SOP classes: offering each in one context; the PACS may transcode",
            len(classes),
        )
        storage = [build_context(uid, list(TRANSFER_SYNTAXES)) for uid in classes]
    else:
        raise InputError(
            f"the series chosen hold {len(classes)} SOP classes, more than one "
            f"C-GET association can offer ({room}); choose fewer series, or use "
            "--mode move"
        )
    return [build_context(GET_MODEL), *storage]


def get_roles(sop_classes: set[str]) -> list[SCP_SCU_RoleSelectionNegotiation]:
    """Return the role selections that let the PACS store each SOP class to us."""
    return [build_role(uid, scp_role=True) for uid in sorted(sop_classes)]
