"""Using a trained model: face detection, prediction on images and video, annotation, export."""
