"""The WS-JDS network: VGG16-C5D backbone, WSDDN detection head, ASPP segmentation head."""

from wsjds.model.backbone import PixelConvention, VGGC5D, WeightsSpec, build_backbone
from wsjds.model.segmentation import ASPPHead
from wsjds.model.wsddn import WSDDNHead, WSDDNOutput, image_bce
from wsjds.model.wsjds import WSJDSModel, WSJDSOutput

__all__ = [
    "ASPPHead", "PixelConvention", "VGGC5D", "WSDDNHead", "WSDDNOutput", "WSJDSModel", "WSJDSOutput",
    "WeightsSpec", "build_backbone", "image_bce",
]
