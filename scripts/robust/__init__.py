"""Library for reproducing Kaur, Cohen & Lipton (2019): perceptually-aligned gradients of robust
classifiers. One concept per module:

    data            dataset registry and splits; images are float tensors in [0, 1]
    download        fetch with checksum, a download cache shared by jobs, extraction, CIFAR-10
    synthetic       the offline CIFAR-shaped dataset of shapes, with class prototypes
    imagenet        ImageNet from a local folder, as a manifest of image files
    models          architecture registry and the Normalize-first wrapper (archs/: the networks)
    checkpoint      plain-dict checkpoints, loadable with ``torch.load(weights_only=True)``
    pretrained      published checkpoints (Cohen et al., robustness library) converted into ours
    training        the one training loop, resumable epoch by epoch; per kind: none, noise, PGD
    attacks         PGD per threat model (l2, linf), targeted and untargeted
    stats           Clopper-Pearson bound, two-sided binomial test, normal quantile (stdlib only)
    smoothing       Cohen et al.'s PREDICT and CERTIFY on blocks of images: noise, counts, decisions
    pag             perceptually aligned images of plain and smoothed classifiers; the PAG pairs
    alignment       per-image alignment metrics of PAG images (judges, reference, structure)
    bootstrap       percentile-bootstrap intervals of means and paired differences
    lpips           the LPIPS distance with the AlexNet backbone, from local weights
    score_alignment LPIPS between a classifier's input gradient and a diffusion model's score
    metrics         certified accuracy, average certified radius, abstention, clean accuracy
    rowlog          resumable TSV rows flushed one by one, published atomically
    results         readers of result files for the report scripts
    latex           number formats, booktabs tables and macros of the paper
    report          the report scripts' error and plot style
    config          params checks: the schema (closed) and the cross-references
    deps            what each stage reads: imported library files, result files of listed ids
    cli             plumbing of the stage scripts: one-line errors, logging, device, progress
    io              atomic file writes
    _torchvision    torchvision's pure-Python parts where its compiled operators cannot load

Nothing here picks a device, reads ``params.yaml`` or exits the process.
"""

__version__ = "0.1.0"
