"""Write weights/vitviz-mini-text/README.md (the shipped image-text model's card) from its folder and evaluation.

    python -m vitviz.synthetic.train_text --export weights/vitviz-mini-text     # the folder and its train.json
    python benchmarks/eval_imagetext_model.py                                   # results/imagetext-model-DATE.json
    python scripts/model_card_text.py --eval benchmarks/results/imagetext-model-DATE.json [--render-minutes 10.6]

The shipped weights' figures come from the evaluation script of commit fbe3eac
(``benchmarks/results/imagetext-model-2026-12-03.json``); today's script measures issue 45's per-word figures in
another format, which the card's hand-written section of the candidate (``TRIED``) quotes. Every figure comes from those files (the probe table from ``probe_frozen_tower.py``'s results, named in the card);
``--render-minutes`` states how long rendering the training scenes took when the run found them cached.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FOLDER = ROOT / "weights" / "vitviz-mini-text"

FALLS_SHORT = """**What falls short.** Shapes and colours meet their goals; grounding does not. The relevance of a distractor's
name stays on the main object in every scene, as does the relevance of the main object's own name, of a shape that
is not in the scene, and of "small <shape>". The model does not see the distractors' shapes: on the held-out scenes
the distractor's shape is the best name after the main object's in {second} of them, which is chance (1 in 9), and
in a check on validation scenes a caption naming the right distractor ("a cube, a small capsule") was preferred to
ones naming a wrong one barely more often than chance, even with the hard negatives. The per-patch loss taught the patches to
name their objects' colours and the main objects' shapes, but a distractor's own patch names its shape in only
about one validation scene in five (the history below), against one in ten by chance: half of the distractors
cover less than one 16×16 patch at 128 px, and vitviz-mini's frozen patch embedding was trained on the main
objects. The logit lens's last-layer map of the distractor's name (the app's Logit lens view) does put more of its
mass on the distractor than on the main object in {lens} of the scenes, but a shape absent from the scene does so
in {absent}: most of that comes from the main object's patches being sure of their own shape, little from the
distractor being seen. Against the first version, shapes lost 3 points (96.1 to {shape}; on the validation scenes,
97.4 to 96.4 ± 0.6 %) and colours gained 13 (72.5 to {colour}). What would help: a higher input resolution or smaller patches for the image tower, a patch
embedding trained on small objects, or larger distractors in the scenes.
"""

# Versions tried and not shipped: written by hand from the results files they name (not formatted).
TRIED = '**Can a 128 px, patch-16 tower see the distractors at all?** A probe (`python benchmarks/probe_distractor_patches.py\n--minutes 25`, validation scenes of seed 31 only, 25 minutes of training on the 2-core CPU each,\n`benchmarks/results/probe-distractor-patches-*-2026-12-04.json`) trains vitviz-mini further on the per-patch shape\ntask alone, each patch read by its own classifier, with nothing else competing for the tower. Before training (the\nshipped vitviz-mini\'s last-layer patch map) a distractor\'s labelled patches name its shape in 11.2 ± 0.9 % (chance\n10 %). After 1,114 steps with the patch embedding trained and random shifts of up to 8 px: 30.0 ± 1.3 % (the\ndistractor\'s best-covered patch: 19.7 ± 1.7 % for distractors under one patch of pixels, 32.4 ± 2.6 % for larger\nones), the main objects\' patches still at 97.1 %. With the patch embedding frozen and no shifts, as this model was\ntrained: 26.7 ± 1.2 % (17.2 / 28.9 %; main objects 95.1 %), its training loss falling to a third of the other\'s\n(0.29 against 0.85): it learns the training scenes rather than the shapes. So even a tower devoted to the task names\na distractor in under a third of its patches after the time this CPU allows; a grounding of 70 % needs a finer view\nof the small objects (256 px input or patch 8: about 4× the work per step) and the compute to train it, a GPU\'s.\n\n**A patch-8 version of this recipe, tried and not shipped.** The same training, but with vitviz-mini\'s patch\nembedding resampled to 8 px patches (16×16 tokens; its kernel area-averaged, its positional embedding interpolated)\nand trained too, with random shifts of up to 8 px (`python -m vitviz.synthetic.train_text --patch-size 8 --shift 8\n--batch-size 128 --minutes 75`): 493 steps in 75.5 minutes + 6.8 minutes of rendering on the 2-core CPU (about 4×\nthe work per scene; `benchmarks/results/train-text-p8-2026-12-04.json`). Both models on the validation scenes (seed\n31, `--validation`; `benchmarks/results/imagetext-model-*validation-2026-12-04.json`; the held-out seed was not\nused for a model that is not shipped):\n\n| validation scenes (seed 31) | shipped (patch 16) | patch 8 |\n| --- | --- | --- |\n| zero-shot shape top-1 | 96.4 ± 0.6 % | 98.8 ± 0.3 % |\n| main colour top-1 | 79.6 ± 1.3 % | 79.5 ± 1.3 % |\n| grounding (relevance count), n = 579 | 0.0 ± 0.0 % | 0.0 ± 0.0 % |\n| … per pixel | 14.3 ± 1.5 % | 24.4 ± 1.8 % |\n| … control: the main object\'s own name, per pixel (low is right) | 8.1 ± 1.1 % | 31.3 ± 1.9 % |\n| lens\'s last-layer map of the distractor\'s name, count | 76.3 ± 1.8 % | 78.4 ± 1.7 % |\n| … control: a shape absent from the scene | 62.3 ± 2.0 % | 69.6 ± 1.9 % |\n| the distractor\'s shape is the best name after the main object\'s (chance 11 %) | 12.1 ± 1.4 % | 12.8 ± 1.4 % |\n| a distractor\'s patch names its shape (training history) | 20.9 % | 20.4 % |\n\nThe finer patches name the main shapes better and nothing else: the distractors\' patches name their shapes no more\noften, the image embedding still does not carry the distractors (their shape is the second name by chance), and the\nrelevance of a distractor\'s name stays on the main object; its higher per-pixel row comes with a higher control (the\nrelevance is spread more evenly, not moved to the distractor). Within this CPU\'s 90 minutes, finer patches alone do\nnot give grounding, and the shipped model stays the patch-16 one (a quarter of the work per image in the app).\n\n**A per-word version for issue 45, tried and not shipped (2026-12-07).** The recipe that\n`python -m vitviz.synthetic.train_text` ran at commit bcab839: 9,000 standard scenes (seed 30) and 9,000 *group* scenes (seed 33;\n`vitviz.synthetic.groups`: 2–3 objects of different shapes and comparable size, each at least 3 % of the picture);\ncaptions that name every object of at least 2 % of the picture, one-object questions ("a photo of a red ball.") and\nthe label box\'s 23 one-word questions in every batch, with a three-valued truth (`captions.truth`: true, false, or\nmoot for objects of 1–2 % and relations within their margins, left out of the loss); SigLIP\'s sigmoid loss, so that\neach typed word gets its own probability (`vitviz.scoring: "sigmoid"` in `config.json`); the per-patch loss, weight 3.\n994 steps in 60.1 minutes + 9.5 minutes of rendering on the 2-core CPU\n(`benchmarks/results/train-text-sigmoid-candidate-2026-12-07.json`). It was evaluated once, on held-out seeds used by\nnothing else: 4,000 standard scenes of seed 57 (the issue\'s goals) and 1,000 group scenes of seed 58, against the\nshipped model on the same scenes (`benchmarks/results/imagetext-model-{previous,candidate}*-seed5[78]-2026-12-07.json`;\n*two-object scenes*: a second object of another shape covers at least 3 %; *present* shapes: those of objects of at\nleast 3 %):\n\n| | standard scenes, seed 57: shipped | … candidate | group scenes, seed 58: shipped | … candidate |\n| --- | --- | --- | --- | --- |\n| two-object scenes | 302 | 302 | 995 | 995 |\n| both present shapes rank above every absent one (goal ≥ 80 %) | 8.9 ± 1.6 % | 25.8 ± 2.5 % | 5.6 ± 0.7 % | 25.8 ± 1.4 % |\n| per-word F1 at 0.5 (goal ≥ 0.85) | 0.62 ± 0.01 | 0.62 ± 0.01 | 0.25 ± 0.01 | 0.60 ± 0.01 |\n| relevance of the second object\'s name, per pixel, higher on it than on the main object (goal ≥ 70 %) | 6.6 ± 1.4 % | 84.8 ± 2.1 % | 51.9 ± 1.6 % | 75.5 ± 1.4 % |\n| … control: the main object\'s own name (low is right) | 1.7 ± 0.7 % | 33.8 ± 2.7 % | 45.1 ± 1.6 % | 25.9 ± 1.4 % |\n| … control: an absent shape\'s name | 4.3 ± 1.2 % | 75.2 ± 2.5 % | 49.2 ± 1.6 % | 51.9 ± 1.6 % |\n| the second object\'s shape first of the 9 other than the main one\'s (chance 11 %) | 7.9 ± 1.6 % | 28.1 ± 2.6 % | 21.9 ± 1.3 % | 47.2 ± 1.6 % |\n| the second object\'s name: median probability | 0.000 | 0.034 | 0.001 | 0.958 |\n| zero-shot shape top-1 of object 0, every scene (goal ≥ 90 %) | 95.3 ± 0.3 % | 92.2 ± 0.4 % | 16.8 ± 1.2 % | 32.5 ± 1.5 % |\n| colour top-1 of object 0, either name (goal ≥ 80 %) | 87.7 ± 0.5 % | 77.9 ± 0.7 % | 41.8 ± 1.6 % | 48.6 ± 1.6 % |\n| detector: scenes in domain | 94.8 ± 0.4 % | 95.8 ± 0.3 % | 22.3 ± 1.3 % | 61.7 ± 1.5 % |\n| detector AUROC against 90 textures and noise images and the 3 sample photos | 0.9962 | 0.9942 | 0.8992 | 0.9500 |\n| … those images flagged out of domain | 98.9 ± 1.1 % | 94.6 ± 2.3 % | 98.9 ± 1.1 % | 94.6 ± 2.3 % |\n\nIt meets none of issue 45\'s goals on the standard scenes, and it loses colours (77.9 against 87.7 %) and some\nout-of-domain detection (one sample photo taken for a scene; AUROC 0.9942 against 0.9962), so the shipped model stays\nthe one above. Its grounding row passes 70 %, but its control does too: the relevance of a shape that is *not* in the\nscene lands on the second object in 75.2 % of the scenes, so the map is spread over both objects rather than placed\nby the word. On the README\'s capsule scene it gives "red ball" 0.6 % (the shipped model: under 0.01 %). **Why: it\nlearnt its training scenes by heart.** On its own training scenes its per-word F1 is 0.996 (group) and 0.993\n(standard); on held-out group scenes, 0.60; the validation figures stopped improving after 6 of its 15 epochs while\nthe loss fell from 75 to 40 (`train.json`\'s history). 18,000 scenes seen 15 times each are too few for blocks that\ncan memorise them, and this CPU renders about 30 scenes a second, so fresh scenes every epoch would take most of the\n90 minutes. What would help, in order of cost: augmentations that keep the captions true (horizontal flips with left\nand right swapped, shifts), more scenes per minute (a cached pool rendered in the background while training), and a\nGPU for a larger number of fresh scenes. The code for all of it (generator, captions, truth, loss, evaluation,\npresentation mode\'s per-word sentence) is in place; only the weights are not.\n\n**A second per-word candidate, tried and not shipped (2026-12-07).** Today\'s defaults (`python -m\nvitviz.synthetic.train_text`): the recipe above with 18,000 standard scenes (seed 30) and 27,000 group scenes (seed\n33), each scene seen left-right mirrored half the time with "to the left of" and "to the right of" swapped\n(`captions.mirrored`), and the epoch exported chosen on the validation scenes\' two-object figures (seed 31: epoch 6\nof 6). 1,048 steps in 55.1 minutes + 24.4 minutes of rendering on the 2-core CPU, 80.1 minutes in all\n(`benchmarks/results/train-text-sigmoid-candidate2-2026-12-07.json`). Evaluated once, on the same held-out scenes\n(`benchmarks/results/imagetext-model-candidate2*-2026-12-07.json`):\n\n| | seed 57: shipped | … first candidate | … second candidate | group seed 58: first | … second |\n| --- | --- | --- | --- | --- | --- |\n| both present shapes rank above every absent one (goal ≥ 80 %) | 8.9 ± 1.6 % | 25.8 ± 2.5 % | 40.1 ± 2.8 % | 25.8 ± 1.4 % | 49.0 ± 1.6 % |\n| per-word F1 at 0.5 (goal ≥ 0.85) | 0.62 ± 0.01 | 0.62 ± 0.01 | 0.70 ± 0.01 | 0.60 ± 0.01 | 0.74 ± 0.01 |\n| relevance of the second object\'s name, per pixel, higher on it (goal ≥ 70 %) | 6.6 ± 1.4 % | 84.8 ± 2.1 % | 97.0 ± 1.0 % | 75.5 ± 1.4 % | 91.5 ± 0.9 % |\n| … control: the main object\'s own name (low is right) | 1.7 ± 0.7 % | 33.8 ± 2.7 % | 19.9 ± 2.3 % | 25.9 ± 1.4 % | 9.5 ± 0.9 % |\n| … control: an absent shape\'s name | 4.3 ± 1.2 % | 75.2 ± 2.5 % | 95.7 ± 1.2 % | 51.9 ± 1.6 % | 49.6 ± 1.6 % |\n| the second object\'s shape first of the 9 other than the main one\'s (chance 11 %) | 7.9 ± 1.6 % | 28.1 ± 2.6 % | 39.7 ± 2.8 % | 47.2 ± 1.6 % | 64.8 ± 1.5 % |\n| the second object\'s name: median probability | 0.000 | 0.034 | 0.203 | 0.958 | 0.928 |\n| zero-shot shape top-1 of object 0, every scene (goal ≥ 90 %) | 95.3 ± 0.3 % | 92.2 ± 0.4 % | 95.5 ± 0.3 % | 32.5 ± 1.5 % | 37.6 ± 1.5 % |\n| colour top-1 of object 0, either name (goal ≥ 80 %) | 87.7 ± 0.5 % | 77.9 ± 0.7 % | 78.8 ± 0.6 % | 48.6 ± 1.6 % | 47.1 ± 1.6 % |\n| detector: scenes in domain | 94.8 ± 0.4 % | 95.8 ± 0.3 % | 94.7 ± 0.4 % | 61.7 ± 1.5 % | 17.3 ± 1.2 % |\n| detector AUROC against 90 textures and noise images and the 3 sample photos | 0.9962 | 0.9942 | 0.9990 | 0.9500 | 0.9424 |\n\nMirrored scenes and two and a half times as many moved every two-object figure up (both shapes above the rest 25.8\n→ 40.1 %, F1 0.62 → 0.70) and kept the shapes (95.5 %) and the detector (AUROC 0.9990, every sample photo flagged).\nOn group scenes the evidence now follows the word: the second object\'s name lands on it in 91.5 % of the scenes, the\nmain object\'s own name in 9.5 %; on the standard scenes it does not yet (an absent shape\'s name lands on the second\nobject in 95.7 %). It still meets none of the two-object goals, its colours stay under 80 % (78.8 %), and on the\nREADME\'s capsule scene it gives "red ball" 5.9 %: presentation mode would say "No red ball" about a ball in plain\nview, which is what issue 45 is about, so the shipped model stays the one above. The red ball there covers 2.5 % of\nthe model\'s 128 px view, 1.6 of its 16 px patches, the size the probe above found this tower barely names. When the\n55 minutes ran out the validation F1 was still rising (0.67, 0.69, 0.71, 0.71 in epochs 3–6; `train.json`) while\nboth-above had held at 0.43 since epoch 4. It learnt its scenes far less by heart: on 500 of its own training scenes\nof each kind its per-word F1 is 0.86 (standard) and 0.89 (group), against 0.74 on 500 validation and 500 held-out\ngroup scenes (the first candidate: 0.99 against 0.60). It fits its own scenes less well too, so it needs more steps\nas well as more scenes: a GPU\'s, the next step. Its\ndetector was fitted on standard scenes only (the first 4,000 of the training set) and took 83 % of the group scenes\nfor out of domain; `train_text` now fits it on scenes of both kinds.\n\n**A third per-word candidate, tried and not shipped (2026-12-07).** Today\'s defaults: the second candidate\'s recipe\nwith batches of 128 instead of 256 (the sigmoid loss\'s scene × caption matrix grows with the batch\'s square, so a\nstep of 128 takes well under half as long: 2,564 steps in 58.1 minutes, against 1,048 in 55.1), the label box\'s\none-word questions weighing 4× a caption in the loss (every two-object figure reads those questions, and they were\nabout 30 columns against 3 × batch captions), the best validation epoch (6 of 8). The scenes came from the second\ncandidate\'s cache (the same seeds and sizes), so one command takes about 83 minutes on a fresh 2-core machine\n(24.4 of rendering; `benchmarks/results/train-text-sigmoid-candidate3-2026-12-07.json`). Evaluated once, on the same\nheld-out scenes (`benchmarks/results/imagetext-model-candidate3*-2026-12-07.json`):\n\n| | seed 57: second candidate | … third | group seed 58: second | … third |\n| --- | --- | --- | --- | --- |\n| both present shapes rank above every absent one (goal ≥ 80 %) | 40.1 ± 2.8 % | 44.4 ± 2.9 % | 49.0 ± 1.6 % | 56.7 ± 1.6 % |\n| per-word F1 at 0.5 (goal ≥ 0.85) | 0.70 ± 0.01 | 0.73 ± 0.01 | 0.74 ± 0.01 | 0.79 ± 0.01 |\n| relevance of the second object\'s name, per pixel, higher on it (goal ≥ 70 %) | 97.0 ± 1.0 % | 97.7 ± 0.9 % | 91.5 ± 0.9 % | 89.2 ± 1.0 % |\n| … control: the main object\'s own name (low is right) | 19.9 ± 2.3 % | 35.4 ± 2.8 % | 9.5 ± 0.9 % | 8.5 ± 0.9 % |\n| … control: an absent shape\'s name | 95.7 ± 1.2 % | 92.7 ± 1.5 % | 49.6 ± 1.6 % | 46.9 ± 1.6 % |\n| the second object\'s shape first of the 9 other than the main one\'s (chance 11 %) | 39.7 ± 2.8 % | 45.4 ± 2.9 % | 64.8 ± 1.5 % | 64.3 ± 1.5 % |\n| zero-shot shape top-1 of object 0, every scene (goal ≥ 90 %) | 95.5 ± 0.3 % | 94.3 ± 0.4 % | 37.6 ± 1.5 % | 39.2 ± 1.5 % |\n| colour top-1 of object 0, either name (goal ≥ 80 %) | 78.8 ± 0.6 % | 80.8 ± 0.6 % | 47.1 ± 1.6 % | 48.6 ± 1.6 % |\n| detector: scenes in domain | 94.7 ± 0.4 % | 95.9 ± 0.3 % | 17.3 ± 1.2 % | 100.0 ± 0.0 % |\n| detector AUROC against 90 textures and noise images and the 3 sample photos | 0.9990 | 0.9422 | 0.9424 | 0.9977 |\n| … sample photos taken for scenes | 0 of 3 | 2 of 3 | 0 of 3 | 2 of 3 |\n| detector refitted per scene kind (below): scenes in domain | | 94.3 ± 0.4 % | | 95.7 ± 0.6 % |\n| … its AUROC; sample photos taken for scenes | | 0.9952; 0 of 3 | | 0.9972; 0 of 3 |\n\nIt is the first candidate to keep both single-object goals (shapes 94.3 %, colours 80.8 %), and every two-object\nfigure moved up again, by less than the second\'s step: both shapes above the rest 40.1 → 44.4 %, F1 0.70 → 0.73.\nThe validation figures tell the same story as the second\'s: both-above held at 0.40–0.43 from epoch 3 on, while the\nF1 rose to 0.74. Where it fails is the small second objects. On seed 57 it puts both shapes above the rest in 42 %\nof the scenes whose second object covers 3–5 % of the picture (2–3 of the tower\'s 16 px patches; 248 of the 302\nscenes), 49 % at 5–7.5 % (45 scenes) and 7 of the 9 above that (the second candidate: 38, 47 %, 7 of 9). The\nshapes that look alike at that size fail most: a second object that is a cube or a sphere comes above the rest in\n57 % and 54 % of its scenes (109 and 80), a ring, torus or capsule in 20, 25 and 0 % (20, 12 and 9 scenes).\nIts detector, as trained, was worse: fitted with one covariance on scenes of both kinds, it took two of the three\nsample photos for scenes and flagged only 71 % of the textures and noise images (AUROC 0.9422 against the shipped\n0.9962), where the second candidate\'s, fitted on standard scenes alone, flagged every photo but also 83 % of the\ngroup scenes. So `train_text` now fits one part per kind of scene, each with its own covariance and threshold, and\nan image is in domain when one part takes it (`DomainDetector.of_parts`). The method was chosen on validation data\n(`benchmarks/choose_text_detector.py`, `results/text-detector-choice-2026-12-08.json`)\nonly (1,000 scenes of seed 31, 500 group scenes of seed 34, eval_ood.py\'s validation textures of seed 101 and its\nscikit-image validation photos with their crops): one covariance for both kinds flagged 56 % of those photos and\ncrops, one per kind 92 %, with 95 % of the scenes of each kind kept. Refitted that way (the model unchanged;\n`benchmarks/results/imagetext-model-candidate3-parts*-2026-12-07.json`), the third candidate\'s detector keeps 94.3 %\nof the held-out standard scenes and 95.7 % of the group ones, flags every sample photo, and reaches AUROC 0.9952\n(the shipped model: 0.9962). On the README\'s capsule scene it gives "red ball" 4.4 % (cube 2.8 %, pyramid 4.6 %, capsule\n99.3 %). It meets none of the two-object goals and would still say "No red ball", so the shipped model stays the one\nabove. The next step is a finer view of the small objects (patch 8 or 256 px, about 4× the work per step), on a\nGPU.\n\n**A fourth per-word candidate, tried and not shipped (2026-12-08).** Today\'s defaults: the third candidate\'s recipe\nplus a third kind of scene, 8,000 standard scenes that show a second object of another shape of at least 3 % of the\npicture (seed 35, `groups.random_pair_spec`: the first such scene of a stream of standard scenes). A large main object\nwith a small second one is what the two-object figures measure, and only 1,449 of the 18,000 standard training scenes\nshow it, while the group scenes\' objects are all of comparable size. Training was cut to 56 minutes: 2,905 steps, the\nbest validation epoch 6 of 8; rendering the new scenes took 9.4 minutes, so one command takes about 91 minutes on a\nfresh 2-core machine, a minute over the goal (`benchmarks/results/train-text-sigmoid-candidate4-2026-12-08.json`).\nEvaluated once, on the same held-out scenes (`benchmarks/results/imagetext-model-candidate4*-2026-12-08.json`):\n\n| | seed 57: third candidate | … fourth | group seed 58: third | … fourth |\n| --- | --- | --- | --- | --- |\n| both present shapes rank above every absent one (goal ≥ 80 %) | 44.4 ± 2.9 % | 57.3 ± 2.8 % | 56.7 ± 1.6 % | 56.5 ± 1.6 % |\n| per-word F1 at 0.5 (goal ≥ 0.85) | 0.73 ± 0.01 | 0.77 ± 0.01 | 0.79 ± 0.01 | 0.79 ± 0.01 |\n| relevance of the second object\'s name, per pixel, higher on it (goal ≥ 70 %) | 97.7 ± 0.9 % | 98.3 ± 0.7 % | 89.2 ± 1.0 % | 92.5 ± 0.8 % |\n| … control: the main object\'s own name (low is right) | 35.4 ± 2.8 % | 38.7 ± 2.8 % | 8.5 ± 0.9 % | 8.5 ± 0.9 % |\n| … control: an absent shape\'s name | 92.7 ± 1.5 % | 94.7 ± 1.3 % | 46.9 ± 1.6 % | 47.6 ± 1.6 % |\n| the second object\'s shape first of the 9 other than the main one\'s (chance 11 %) | 45.4 ± 2.9 % | 56.0 ± 2.9 % | 64.3 ± 1.5 % | 64.5 ± 1.5 % |\n| the second object\'s name: median probability | 0.218 | 0.538 | | 0.980 |\n| zero-shot shape top-1 of object 0, every scene (goal ≥ 90 %) | 94.3 ± 0.4 % | 94.6 ± 0.4 % | 39.2 ± 1.5 % | 39.0 ± 1.5 % |\n| colour top-1 of object 0, either name (goal ≥ 80 %) | 80.8 ± 0.6 % | 80.5 ± 0.6 % | 48.6 ± 1.6 % | 49.4 ± 1.6 % |\n| detector (per scene kind): scenes in domain | 94.3 ± 0.4 % | 94.6 ± 0.4 % | 95.7 ± 0.6 % | 93.7 ± 0.8 % |\n| … AUROC against 90 textures and noise images and the 3 sample photos (the shipped model: 0.9962) | 0.9952 | 0.9945 | 0.9972 | 0.9939 |\n| … sample photos taken for scenes | 0 of 3 | 0 of 3 | 0 of 3 | 0 of 3 |\n\nThe new scenes moved what they were made for: on the standard scenes both shapes now come above the rest in 57.3 %\n(44.4), the second object\'s name has a median probability of 0.54 (0.22), and the second object\'s shape is the best\nof the other nine in 56 % (45), with the shapes and colours kept (94.6 %, 80.5 %). By the second object\'s size: 56 %\nof the scenes at 3–5 % of the picture (248 scenes; 42 % before), 58 % at 5–7.5 % (45; 49 %), 7 of the 9 above. The\ngroup scenes did not move (56.5 %), and on validation both-above held at 0.54–0.59 from epoch 3 on (`train.json`):\nthis, too, is a plateau, not a run cut short. It still meets none of the two-object goals, its detector is a little\nbehind the shipped model\'s (AUROC 0.9945 against 0.9962; every sample photo flagged), and on the README\'s capsule\nscene it gives "red ball" 2.7 % (capsule 99.96 %, cube 4.9 %), under the 3 % at which the figures call an object\npresent but in plain view: presentation mode would say "No red ball", so the shipped model stays the one above.\nAlso tried that day and stopped after 2 of its epochs: the third candidate\'s recipe with the patch embedding, CLS\ntoken and positional embedding trained at 16 px and random shifts of up to 4 px (`--train-embedding true --shift\n4`): at the same steps it trailed the third candidate (validation both-above 0.31 against 0.38 after 702 steps, the\nsecond object\'s patch named 33 % against 40 %), each epoch 38 % slower (images embedded at every step;\n`benchmarks/results/train-text-embedding-stopped-2026-12-08.json`). What the tower misses is resolution, not a\nbetter 16 px embedding: patch 8 or 256 px input, about 4× the work per step, on a GPU, stays the next step.\n'

TEMPLATE = """# vitviz-mini-text — model card

vitviz's own image-text model, shipped so that typed labels work offline ("red ball, capsule, donut"). **It was
trained only on vitviz's procedurally rendered scenes** (`vitviz.synthetic.scenes`, generator version 3) and on
captions written from each scene's own description. It knows {n_words} words and nothing else: it is a teaching and
demonstration model for looking at where an image-text model looks, **not a model for photographs** (for those, use
`clip-b32` or `siglip-b16`).

## Files

The folder has the Hugging Face CLIP layout and loads through the same code as any CLIP folder
(`vitviz.models.convert.load_foreign`; `Engine("vitviz-mini-text")`, the Model menu, `--model vitviz-mini-text`).

| file | what |
| --- | --- |
| `config.json` | CLIP's config (`model_type` "clip", `text_config`, `projection_dim`), plus a `vitviz` entry: the image tower's vitviz `ViTConfig` (`vision`), the labels asked about first, the vocabulary, the colour names and the label box's presets |
| `model.safetensors` | the weights, float16 ({size_mb} MB): the image tower under vitviz's names (`blocks.*`, `patch_embed.*`, ...), the text tower under CLIP's (`text_model.*`, `text_projection.weight`, `logit_scale`) |
| `tokenizer.json`, `special_tokens_map.json`, `tokenizer_config.json` | a word-level `tokenizers` tokenizer of the caption vocabulary; other words become `[UNK]` |
| `preprocessor_config.json` | 128 px, mean = std = 0.5 (vitviz-mini's preprocessing) |
| `model.ood.safetensors` | the out-of-domain detector (below) |
| `train.json` | the training configuration and the per-epoch validation history of the run that made these weights |

Why the extra `vitviz` entry: CLIP's `vision_config` cannot describe vitviz-mini's tower (a patch-embedding bias, no
LayerNorm before the blocks, exact GELU). `vitviz.models.imagetext` reads `vitviz.vision` when it is there and CLIP's
own keys otherwise, so Hub CLIP and SigLIP folders load as before.

## Architecture

- **Image tower**: vitviz-mini's patch embedding, CLS token and positional embedding, **frozen** (width 192, 16 px
  patches, 128 px); then vitviz-mini's 6 blocks, trained further here, a final LayerNorm, and a linear projection of
  the CLS token to the 128-dimensional joint space. 6 layers of 6 heads, as vitviz-mini: every view of the app
  (attention heads, rollout, class evidence, logit lens, knockout) works the same way.
- **Text tower**: CLIP's (causal self-attention, read at the end-of-text token): 3 pre-norm blocks of width 128, 4
  heads, GELU, a context of 48 tokens, a linear projection to 128; scores are a softmax over the labels of
  `logit_scale · cos` (learnt scale {scale}).
- **No depth head**: vitviz-mini's depth head reads its blocks 2, 4 and 6, and they changed. Model → Extra depth
  model → vitviz-mini adds vitviz-mini's depth beside this model in the app.

## What the captions say

Each training scene gets a new random caption every epoch, written from its spec and the renderer's per-object
pixel map (`scenes.object_ids`, `vitviz.synthetic.captions`): the main object's shape and colour, and each visible
distractor (at least 0.2 % of the pixels) with probability ½, with its colour and where it is. For example:

> a photo of a red and grey capsule, a small red ball to the left of it, a small donut.

- **Shapes**: the 10 class names (`star prism` for `star_prism`); a quarter of the time `ball` (sphere), `box` (cube),
  `donut` (torus) or `star` (star prism). One caption in ten says `object` instead of the main shape.
- **How a colour gets its name**: from the hue and saturation (HSV) of the object's first albedo colour (`color1`,
  sRGB, before lighting): saturation below 0.3 is `grey`; otherwise the hue, in degrees, names it: red (< 15 or
  ≥ 345), orange (< 45), yellow (< 70), green (< 165), cyan (< 195), blue (< 255), purple (< 290), pink (< 345). A
  textured object whose second colour has another name is two-coloured ("red and grey"); plain objects and shades of
  one hue have one name. Colours are named three times in four.
- **Relations** of a distractor to the main object, where the scene supports them: `to the left of` / `to the right
  of` (centroids more than 8 % of the image width apart), `in front of` / `behind` (centres more than 0.3 m apart along
  the camera's axis). Every object stands on the floor, so "on the floor" says nothing and is not used.
- **Vocabulary** ({n_words} words): {vocabulary}. The app lists them under the label box and its presets (★) fill in
  the shapes, the colours ("red object", ...) and coloured shapes. A typed word outside the vocabulary is still asked
  about, with a notice: "the model has never seen: teapot".

## The recipe, and why

LiT (Zhai et al. 2022, "locked-image tuning") keeps a pretrained image tower and teaches a text tower to match it.
vitviz-mini was trained to name only the main object's shape, so its last layers may have dropped what else a
caption says. `benchmarks/probe_frozen_tower.py` measured that before anything was trained: read-outs trained on
4,000 scenes of the training seed, scored on 1,000 of the validation seed
(`benchmarks/results/probe-frozen-tower*-2026-12-03.json`):

| read-out of the frozen tower | main shape top-1 | main colour top-1 (9 names) | distractor shape AUC | distractor colour AUC |
| --- | --- | --- | --- | --- |
| linear, final CLS token | 97.1 ± 0.5 % | 33.4 ± 1.5 % | 0.51 | 0.52 |
| linear, mean final patch token | 96.9 ± 0.5 % | 26.8 ± 1.4 % | 0.52 | 0.53 |
| one new block on block 6's output | 97.0 ± 0.5 % | 36.3 ± 1.5 % | 0.69 | 0.69 |
| one new block on block 4's output | 90.9 ± 0.9 % | 62.2 ± 1.5 % | 0.69 | 0.71 |
| one new block on block 3's output | 83.3 ± 1.2 % | 69.0 ± 1.5 % | 0.64 | 0.64 |
| one new block on block 2's output | 72.5 ± 1.4 % | 70.3 ± 1.4 % | 0.68 | 0.73 |

The final tokens keep the shape and lose the colours (33 % where the most frequent colour alone scores 27 %) and the
distractors (AUC 0.51: chance), and no block's output carries the distractors well. The first shipped version froze
blocks 1–3 and retrained 4–6 with the contrastive loss alone: shapes 96.1 ± 0.6 %, colours 72.5 ± 1.4 % (goal 75),
and on validation scenes a distractor's shape was the best label after the main object's no more often than chance,
nor was a caption naming the right distractor preferred to one naming a wrong one; the relevance of a distractor's
name never landed on it. So this version trains every block (from vitviz-mini's, so that shapes are named from the
first step) and adds two things, chosen on validation scenes only:

- **a per-patch loss**: every patch that an object covers by at least a quarter is scored, through the final norm and
  the projection, against the 10 shape prompts and the 9 colour prompts ("a photo of a capsule.", "a photo of a red
  object."), with cross-entropy for its object's shape and first colour; each object of a scene weighs the same in
  it, so a small distractor counts as much as the main object. This is what the logit lens's last-layer map reads.
- **hard negative captions** (NegCLIP, Yuksekgonul et al. 2023): beside each scene's caption, the same scene's
  caption with one distractor's shape or colour changed (the main object's, in a scene without distractors), a
  negative wherever it is false.

## Figures on held-out scenes

{figures}

{falls_short}
{tried}
## Out-of-domain detector

{ood}

## Training

- Data: 16,000 scenes of seed 30 for training, 1,000 of seed 31 for validation (128 px); rendering them with their
  object maps took 10.6 minutes with 2 worker processes on the 2-core CPU (`data_cache/captions-*.npz`, made by the
  script when missing). Their frozen patch embeddings, computed once: {feature_s} s.
- Loss: CLIP's symmetric cross-entropy over a batch of 256 scenes and 512 captions (each scene's random caption,
  new every epoch, and its hard negative), with every caption that is *true* of a scene counted as one of its
  positives (the captions are partial, and a batch holds many "a photo of a red cube."), so no true caption is
  pushed away as a negative; plus the per-patch loss, weight 1.
- AdamW (learning rate 1e-3 for the text tower and the projection, 5e-4 for the six blocks copied from vitviz-mini
  and the final norm; weight decay 0.05), 200 warm-up steps, cosine decay over whichever ends first of 40 epochs and
  60 minutes, gradient clipping at 1.0. CPU float32.
- Time on this 2-core CPU: {train_min} minutes of training ({epochs} epochs, {steps} steps) + {feature_min} minutes
  of patch embeddings + 10.6 minutes of rendering = {total_min} minutes in all (goal ≤ 90). No GPU was lent to the
  session that trained it, so there is no GPU time to report.
- Runs: the first version (above) shipped first. Before it, two runs were stopped after 2–3 epochs, their zero-shot
  shape accuracy stuck at 67 %: the tokenizer gave the end-of-text token id 2, and CLIP text towers whose
  `eos_token_id` is 2 read the token with the *largest* id (transformers' rule for old CLIP configs), which was a
  word before the shape. The end-of-text token now has the largest id, so both readings agree. A run of this recipe
  without the hard negatives was stopped after 3 epochs to add them (its distractor figures were at chance).
- Reproduce with the code of commit fbe3eac (`git checkout fbe3eac -- vitviz/synthetic benchmarks/eval_imagetext_model.py`);
  today's defaults train the fourth per-word candidate described above instead:

  ```bash
  python -m vitviz.synthetic.train_text --export weights/vitviz-mini-text
  python benchmarks/eval_imagetext_model.py
  ```

Validation history (1,000 scenes of seed 31; zero-shot with "a photo of a {{}}."; all in `train.json`):

{history}

## Limitations

- Synthetic domain and a closed vocabulary of {n_words} words; word order matters only as the captions use it
  ("a red cube, a small blue ball to the left of it"). Unknown words get a notice, and their embedding is that of
  `[UNK]`: the score of a label made only of unknown words means nothing.
- Distractors are small (half of them cover less than one 16×16 patch): what the model says about them, and where
  its evidence for them falls, is less reliable than for the main object (figures above).
- Colours are named from the albedo before lighting; a dark shade of a hue, or a pale colour near the grey threshold,
  can look different from its name.
"""


def pct(r: dict) -> str:
    return f"{100 * r['rate']:.1f} ± {100 * r['se']:.1f} %"


def figures(ev: dict) -> str:
    r = ev["report"]

    def goal(key: str, target: float) -> str:
        return f"≥ {100 * target:.0f} %: " + ("met" if r[key]["rate"] >= target else "**not met**")

    def with_n(key: str) -> str:
        return f"{pct(r[key])} (n = {r[key]['n']:,})"

    rows = [
        ("zero-shot shape top-1, the 10 shape names", pct(r["shape_top1"]), goal("shape_top1", 0.9)),
        ("main colour top-1 among the 9 colour names (a two-coloured object: either name)",
         pct(r["colour_top1_either_name"]), goal("colour_top1_either_name", 0.75)),
        ("… objects of one colour name", with_n("colour_top1_one_colour"), ""),
        ("… the first colour of every object (a two-coloured one's other name counted wrong)",
         pct(r["colour_top1"]), ""),
        ("grounding: the distractor's shape name puts more of its relevance on the distractor than on the main "
         "object", with_n("grounding"), goal("grounding", 0.7)),
        ("… distractors of at least one patch (256 px)", with_n("grounding_distractor_at_least_a_patch"), ""),
        ("… distractors under one patch", with_n("grounding_distractor_under_a_patch"), ""),
        ("… per pixel: mean relevance on the distractor's pixels above that on the main object's",
         pct(r["grounding_per_pixel"]), ""),
        ("… with the label \"small <shape>\", the captions' words for a distractor", pct(r["grounding_small_label"]),
         ""),
        ("the logit lens's last-layer patch map of the distractor's shape name, same count",
         with_n("grounding_lens_map"), ""),
        ("control: the lens's map of a shape absent from the scene, same count",
         pct(r["control_absent_label_lens_map"]), ""),
        ("the distractor's shape is the best of the 10 names after the main object's (chance 11 %)",
         pct(r["distractor_second_label"]), ""),
        ("control: the main object's own name, same count", pct(r["control_main_label"]), "(low is right)"),
        ("control: the main object's own name, per pixel", pct(r["control_main_label_per_pixel"]), "(low is right)"),
        ("control: a shape absent from the scene, same count", pct(r["control_absent_label"]), ""),
    ]
    lines = ["| figure | value | goal |", "| --- | --- | --- |"] + [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return (f"{ev['scenes']:,} generated scenes of seed {ev['seed']}, used by nothing else (not training, validation, "
            "the probes or any other evaluation), through the engine as in the app (labels with the default template "
            "\"a photo of a {}.\"); `python benchmarks/eval_imagetext_model.py` as of commit fbe3eac (results: "
            f"`benchmarks/results/{ev['_file']}`; the script now measures issue 45's figures, in the per-word section "
            "below). Standard errors are binomial.\n\n" + "\n".join(lines) + "\n\n"
            "Grounding uses Chefer relevance (`Engine.evidence(...).map(\"relevance\", index)`) of the distractor's "
            "shape name among the 10 shape names, on the scenes with a visible distractor of another shape than the "
            "main object's (the largest such one); a patch's relevance is spread evenly over its pixels, and the "
            "renderer's object map gives each object's pixels. The distractors are small (median "
            f"{ev['_median_distractor']} px, against {ev['_median_main']} px for the main object), so the count asks "
            "for relevance far more concentrated than the object's area; the per-pixel row asks only that the "
            "distractor's pixels get more relevance each than the main object's.")


def history(train: dict) -> str:
    lines = ["| epoch | minutes | shape top-1 | colour top-1 (first colour) | one-colour objects | distractor: best label "
             "after the main one | distractor: its patch named |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for h in train["history"]:
        extra = (f"{100 * h['distractor_second']:.1f} % | {100 * h['distractor_patch']:.1f} %"
                 if "distractor_second" in h else " | ")
        lines.append(f"| {h['epoch']} | {h['minutes']:.1f} | {100 * h['shape_top1']:.1f} % | "
                     f"{100 * h['colour_top1']:.1f} % | {100 * h['colour_top1_one_colour']:.1f} % | {extra} |")
    return "\n".join(lines)


def ood(ev: dict) -> str:
    r = ev["report"]["in_domain"]
    photos = ev["photos_in_domain"]
    return ("`model.ood.safetensors` is vitviz-mini's kind of detector, fitted on this model's own final tokens: the "
            "squared Mahalanobis distance of the mean final patch token to the 10 main shapes' means (one shared "
            "covariance), fitted on 4,000 training scenes, its threshold the 95th percentile of the 1,000 validation "
            "scenes. The app and `vitviz analyze` report it as they do for vitviz-mini (\"this model only knows 10 "
            f"synthetic shapes and their colours; this image looks like none of them\"). On the held-out scenes "
            f"{pct(r)} are in domain; of the {len(photos)} sample photos (`assets/samples/photo-*`), "
            f"{sum(photos.values())} {'is' if sum(photos.values()) == 1 else 'are'} taken for one of its scenes.")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eval", required=True, type=Path)
    ap.add_argument("--render-minutes", type=float, default=10.6)
    args = ap.parse_args()
    train = json.loads((FOLDER / "train.json").read_text())
    config = json.loads((FOLDER / "config.json").read_text())
    ev = json.loads(args.eval.read_text())
    ev["_file"] = args.eval.name
    rows = ev["grounding_rows"]
    ev["_median_distractor"] = int(sorted(r["distractor_pixels"] for r in rows)[len(rows) // 2])
    ev["_median_main"] = int(sorted(r["main_pixels"] for r in rows)[len(rows) // 2])
    from safetensors import safe_open

    with safe_open(str(FOLDER / "model.safetensors"), framework="pt") as fh:
        scale = float(fh.get_tensor("logit_scale").float().exp())
    words = config["vitviz"]["vocabulary"]
    total = train["train_minutes"] + train["feature_minutes"] + args.render_minutes
    text = TEMPLATE.format(
        n_words=len(words), vocabulary=", ".join(f"`{w}`" for w in words),
        size_mb=f"{(FOLDER / 'model.safetensors').stat().st_size / 2**20:.1f}", scale=f"{scale:.1f}",
        figures=figures(ev), ood=ood(ev), feature_s=f"{60 * train['feature_minutes']:.0f}",
        train_min=f"{train['train_minutes']:.1f}", epochs=len(train["history"]), steps=train["steps"],
        feature_min=f"{train['feature_minutes']:.1f}", total_min=f"{total:.0f}", history=history(train),
        tried=TRIED, falls_short=FALLS_SHORT.format(
            second=pct(ev["report"]["distractor_second_label"]), lens=pct(ev["report"]["grounding_lens_map"]),
            absent=pct(ev["report"]["control_absent_label_lens_map"]), shape=pct(ev["report"]["shape_top1"]),
            colour=pct(ev["report"]["colour_top1_either_name"])))
    (FOLDER / "README.md").write_text(text, "utf-8")
    print(f"wrote {FOLDER / 'README.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
