# Reference values for tests/test_sensitivity.py (run from tests/reference/: Rscript survival_ovarian.R)
# Data: survival::ovarian (Edmonson et al. 1979: 26 women, 12 deaths), times converted from days
# to months (days / 30.4375). rx: 1 or 2 -> treatment = rx - 1. A small real cohort: 8 quantile
# intervals hold 1-2 deaths each, where a proper baseline-hazard prior informs the HR.
library(survival)
d <- ovarian
d$treatment <- d$rx - 1
d$time_months <- d$futime / 30.4375
write.csv(data.frame(id = seq_len(nrow(d)), treatment = d$treatment, os_time = d$time_months,
                     os_event = d$fustat, age = d$age, resid_ds = d$resid.ds, ecog_ps = d$ecog.ps),
          "survival_ovarian.csv", row.names = FALSE)
# PWE Poisson GLM (maximum likelihood) on the 8 quantile intervals of the death times (R's
# quantile type 7 = NumPy's default), interval (a, b] convention
cuts <- c(0, unname(quantile(d$time_months[d$fustat == 1], (1:7) / 8, type = 7)))
s <- survSplit(Surv(time_months, fustat) ~ treatment, data = d, cut = cuts[-1],
               episode = "interval", start = "tstart", end = "tstop")
s$exposure <- s$tstop - s$tstart
fit <- glm(fustat ~ factor(interval) + treatment + offset(log(exposure)), family = poisson,
           data = s[s$exposure > 0, ])
out <- data.frame(
  quantity = c("pwe_glm_log_hr", "pwe_glm_se", paste0("cut_", seq_along(cuts))),
  value = c(coef(fit)[["treatment"]], sqrt(vcov(fit)["treatment", "treatment"]), cuts))
write.csv(out, "survival_ovarian_reference.csv", row.names = FALSE)
cat(sprintf("%s = %.8f\n", out$quantity, out$value), sep = "")
