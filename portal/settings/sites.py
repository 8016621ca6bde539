"""A site's gate to its clinicians (diagnosis.site_validation, diagnosis.site_precision): what a
silent site's films must show before the model's results, or a faster precision of it, reach them."""
import environ

env = environ.Env()

# Local validation before a site goes live (diagnosis.site_validation): the blind reads of each finding
# a report needs before it is offered for a decision, and the targets below which going live needs an
# override with a reason: the AUC's lower 95% bound and the specificity at the site's threshold.
SITE_VALIDATION_MIN_PER_FINDING = env.int("PORTAL_SITE_VALIDATION_MIN_PER_FINDING", default=30)
SITE_LIVE_MIN_AUC_LOWER_BOUND = env.float("PORTAL_SITE_LIVE_MIN_AUC_LOWER_BOUND", default=0.75)
SITE_LIVE_MIN_SPECIFICITY = env.float("PORTAL_SITE_LIVE_MIN_SPECIFICITY", default=0.80)
# A reduced-precision serving model (bf16, int8) is compared with Keras on a silent site's films
# before it serves that site (diagnosis.site_precision): at least this many films, at most the
# newest SITE_PRECISION_MAX_FILMS of its silent period. At 30 films one moved film already fails the
# 1% per-film bound, so a check passes only with none moved and no label changed.
SITE_PRECISION_MIN_FILMS = env.int("PORTAL_SITE_PRECISION_MIN_FILMS", default=30)
SITE_PRECISION_MAX_FILMS = env.int("PORTAL_SITE_PRECISION_MAX_FILMS", default=500)
