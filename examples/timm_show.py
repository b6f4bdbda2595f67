"""Show a timm ViT object in vitviz, unchanged: random weights, no download.

    python examples/timm_show.py [IMAGE]

vitviz finds the attention inside timm's blocks by itself (no layer names given). With random weights the
predictions mean nothing, but every view opens; pass ``pretrained=True`` to timm for a trained model (a download).
"""

import sys

try:
    import timm
except ImportError as exc:  # timm missing, or a dependency of it (torchvision) missing or mismatched
    raise SystemExit(f"this example needs timm (pip install timm); importing it failed: {exc}") from None

import vitviz


def main() -> int:
    model = timm.create_model("vit_small_patch16_224", pretrained=False)
    image = sys.argv[1] if len(sys.argv) > 1 else None
    # Blocks until the window is closed (under IPython with `%gui qt` it returns at once).
    vitviz.show(model, image=image, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), image_size=224)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
