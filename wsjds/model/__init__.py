"""The WS-JDS network: a registered backbone family, WSDDN detection head, ASPP segmentation head."""

from wsjds.model.backbone import PixelConvention, VGGC5D, WeightsSpec
from wsjds.model.backbones import BACKBONES, Backbone, build_backbone, register_backbone
from wsjds.model.segmentation import ASPPHead
from wsjds.model.wsddn import WSDDNHead, WSDDNOutput, image_bce
from wsjds.model.wsjds import WSJDSModel, WSJDSOutput

__all__ = [
    "ASPPHead", "BACKBONES", "Backbone", "PixelConvention", "VGGC5D", "WSDDNHead", "WSDDNOutput", "WSJDSModel", "WSJDSOutput",
    "WeightsSpec", "build_backbone", "image_bce", "register_backbone",
]
