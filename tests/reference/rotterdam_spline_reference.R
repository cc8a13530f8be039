# Reference values for the propensity-score spline ("ps_covariate") on the Rotterdam cohort: what
# R's natural cubic spline ns(qlogis(ps), df = k) gives, so that bayes-haic's spline_df = k can be
# checked to mean the same as R's df = k. Run from the repository root:
#   Rscript tests/reference/rotterdam_spline_reference.R
# It only reads the checked-in rotterdam_cohort.csv and rotterdam_ps.csv (written by
# rotterdam_make_reference.R, which it does not rerun) and writes, next to this script:
#   rotterdam_spline_reference.csv  log HR and SE of treatment per endpoint and df (k = 3, 4):
#                                   Poisson GLM on the piecewise-exponential split (cut points as
#                                   in rotterdam_make_reference.R) with ns(qlogis(ps), df = k)
#                                   in the linear predictor; plus the knots ns() placed
#   rotterdam_spline_basis.csv      ns(x, df = k) for a small vector x (k = 3, 4), long format
#                                   (x, df, column, value), to check the spanned space
# Made with R 4.2.2 and survival 3.5-3 (Debian bookworm packages r-base-core, r-cran-survival);
# splines is part of base R.
suppressMessages(library(survival))
library(splines)
here <- "tests/reference"
d <- read.csv(file.path(here, "rotterdam_cohort.csv"))
ps <- read.csv(file.path(here, "rotterdam_ps.csv"))
stopifnot(identical(d$id, ps$id))
d$lps <- qlogis(ps$ps)
cuts <- c(0, 12, 24, 36, 60, 84, 120)  # months, as in rotterdam_make_reference.R
rows <- list()
for (k in c(3, 4)) {
  b <- ns(d$lps, df = k)  # knots from the whole cohort, as the model uses them
  kn <- paste(sprintf("%.10g", c(attr(b, "Boundary.knots")[1], attr(b, "knots"),
                                 attr(b, "Boundary.knots")[2])), collapse = " ")
  for (ep in c("os", "pfs")) {
    d$time <- d[[paste0(ep, "_time")]]
    d$status <- d[[paste0(ep, "_event")]]
    s <- survSplit(Surv(time, status) ~ ., data = d, cut = cuts[-1], episode = "interval")
    s$expo <- s$time - s$tstart
    s <- s[s$expo > 0, ]
    # tight convergence: at glm's default epsilon (1e-8) the SE is off by up to 6e-5 relative
    # ns() with the knots of the patient-level vector (the split rows repeat patients, which would
    # move quantile knots), via predict() on the split rows
    s_b <- predict(b, s$lps)
    g <- glm(status ~ factor(interval) + treatment + s_b + offset(log(expo)), family = poisson, data = s,
             control = glm.control(epsilon = 1e-12, maxit = 100))
    rows[[length(rows) + 1]] <- data.frame(
      endpoint = ep, df = k, source = "poisson glm + ns(qlogis(ps))",
      log_hr = sprintf("%.10g", coef(g)["treatment"]),
      se = sprintf("%.10g", sqrt(vcov(g)["treatment", "treatment"])), knots = kn)
  }
}
write.csv(do.call(rbind, rows), file.path(here, "rotterdam_spline_reference.csv"), row.names = FALSE,
          quote = FALSE)
# the basis itself on a small, skewed vector (ties included)
x <- c(-4.2, -3.1, -2.5, -2.5, -2.0, -1.7, -1.2, -0.9, -0.4, 0, 0.3, 0.8, 1.9, 3.5)
basis <- list()
for (k in c(3, 4)) {
  b <- ns(x, df = k)
  for (j in seq_len(ncol(b))) {
    basis[[length(basis) + 1]] <- data.frame(x = x, df = k, column = j, value = sprintf("%.12g", b[, j]))
  }
}
write.csv(do.call(rbind, basis), file.path(here, "rotterdam_spline_basis.csv"), row.names = FALSE,
          quote = FALSE)
