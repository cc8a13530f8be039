# Reference values on real observational data: the Rotterdam breast-cancer cohort shipped with R's
# survival package (Foekens et al. 2000; 2982 patients; hormonal therapy given to higher-risk
# patients, so the crude HR is confounded). Run from the repository root:
#   Rscript tests/reference/rotterdam_make_reference.R
# Writes, next to this script:
#   rotterdam_cohort.csv     the data in bayes-haic's cohort schema (months; treatment = hormon;
#                            OS = death; "PFS" = recurrence-free survival: recurrence or death;
#                            no response data, so response is empty = not evaluable)
#   rotterdam_ps.csv         id, the logistic propensity score fitted by glm()
#   rotterdam_reference.csv  log HR and SE of hormon per endpoint and adjustment:
#                            Poisson GLM on the piecewise-exponential split (the PWE model's ML
#                            estimate; crude and covariate-adjusted), the same weighted by
#                            stabilised ATE weights (IPTW point estimate), and coxph for context.
# Made with R 4.2.2 and survival 3.5-3 (Debian bookworm packages r-base-core, r-cran-survival).
# The PS-spline references (Poisson GLM with ns(qlogis(ps), df = 3 and 4) on the same split) are
# made by rotterdam_spline_reference.R from the files this script writes, without rerunning it.
suppressMessages(library(survival))
here <- "tests/reference"
r <- survival::rotterdam
month <- 365.25 / 12
d <- data.frame(
  id = sprintf("R%04d", r$pid),
  treatment = r$hormon,
  os_time = round(r$dtime / month, 4),
  os_event = r$death,
  # recurrence-free survival as in the survival package's vignette: recurrence time if recurred, else
  # the death/censoring time; event = recurrence or death
  pfs_time = round(ifelse(r$recur == 1, r$rtime, r$dtime) / month, 4),
  pfs_event = pmax(r$recur, r$death),
  response = NA,
  age = r$age,
  meno = r$meno,
  size_20_50 = as.integer(r$size == "20-50"),
  size_gt_50 = as.integer(r$size == ">50"),
  grade3 = as.integer(r$grade == 3),
  nodes = r$nodes,
  log_pgr = round(log1p(r$pgr), 6),
  log_er = round(log1p(r$er), 6),
  chemo = r$chemo
)
write.csv(d, file.path(here, "rotterdam_cohort.csv"), row.names = FALSE, na = "", quote = FALSE)
covs <- c("age", "meno", "size_20_50", "size_gt_50", "grade3", "nodes", "log_pgr", "log_er", "chemo")
ps_fit <- glm(reformulate(covs, "treatment"), family = binomial, data = d)
d$ps <- fitted(ps_fit)
write.csv(data.frame(id = d$id, ps = sprintf("%.12g", d$ps)), file.path(here, "rotterdam_ps.csv"),
          row.names = FALSE, quote = FALSE)
p1 <- mean(d$treatment)
d$w <- ifelse(d$treatment == 1, p1 / d$ps, (1 - p1) / (1 - d$ps))  # stabilised ATE weights

cuts <- c(0, 12, 24, 36, 60, 84, 120)  # months; the last interval is open
rows <- list()
add <- function(endpoint, adjustment, source, est, se) {
  rows[[length(rows) + 1]] <<- data.frame(endpoint = endpoint, adjustment = adjustment, source = source,
                                          log_hr = sprintf("%.10g", est), se = sprintf("%.10g", se))
}
for (ep in c("os", "pfs")) {
  d$time <- d[[paste0(ep, "_time")]]
  d$status <- d[[paste0(ep, "_event")]]
  s <- survSplit(Surv(time, status) ~ ., data = d, cut = cuts[-1], episode = "interval")
  s$expo <- s$time - s$tstart
  s <- s[s$expo > 0, ]
  g0 <- glm(status ~ factor(interval) + treatment + offset(log(expo)), family = poisson, data = s)
  add(ep, "none", "poisson glm", coef(g0)["treatment"], sqrt(vcov(g0)["treatment", "treatment"]))
  gc <- glm(reformulate(c("factor(interval)", "treatment", covs, "offset(log(expo))"), "status"),
            family = poisson, data = s)
  add(ep, "covariates", "poisson glm", coef(gc)["treatment"], sqrt(vcov(gc)["treatment", "treatment"]))
  gw <- suppressWarnings(glm(status ~ factor(interval) + treatment + offset(log(expo)), family = poisson,
                             data = s, weights = w))
  add(ep, "iptw", "weighted poisson glm (stabilised ATE weights; model SE)", coef(gw)["treatment"],
      sqrt(vcov(gw)["treatment", "treatment"]))
  # nonparametric bootstrap of the IPTW estimate, refitting the propensity model in every
  # replicate: the frequentist analogue of the Bayesian bootstrap in survival_bootstrap.py
  set.seed(20240329)
  boot <- replicate(400, {
    b <- d[sample.int(nrow(d), replace = TRUE), ]
    b$id <- seq_len(nrow(b))
    pb <- fitted(glm(reformulate(covs, "treatment"), family = binomial, data = b))
    q1 <- mean(b$treatment)
    b$w <- ifelse(b$treatment == 1, q1 / pb, (1 - q1) / (1 - pb))
    sb <- survSplit(Surv(time, status) ~ ., data = b, cut = cuts[-1], episode = "interval")
    sb$expo <- sb$time - sb$tstart
    sb <- sb[sb$expo > 0, ]
    coef(suppressWarnings(glm(status ~ factor(interval) + treatment + offset(log(expo)),
                              family = poisson, data = sb, weights = w)))["treatment"]
  })
  add(ep, "iptw", "weighted poisson glm; bootstrap SE (400 replicates; PS refitted)", coef(gw)["treatment"], sd(boot))
  cx <- coxph(Surv(time, status) ~ treatment, data = d)
  add(ep, "none", "coxph", coef(cx)["treatment"], sqrt(vcov(cx)[1, 1]))
  cw <- coxph(Surv(time, status) ~ treatment, data = d, weights = w, robust = TRUE)
  add(ep, "iptw", "coxph weighted (robust SE)", coef(cw)["treatment"], sqrt(vcov(cw)[1, 1]))
}
write.csv(do.call(rbind, rows), file.path(here, "rotterdam_reference.csv"), row.names = FALSE, quote = FALSE)
