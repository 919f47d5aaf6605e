"""The pipeline's stages, one module each: training rounds (CGL and Fast R-CNN), WSOD detection,
pseudo ground truth, Fast R-CNN, masks, trunk pretraining, and prediction on new images."""
