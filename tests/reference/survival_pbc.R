# Reference values for tests/test_sensitivity.py (run from tests/reference/: Rscript survival_pbc.R)
# Data: survival::pbc, the Mayo Clinic trial of D-penicillamine vs placebo in primary biliary
# cholangitis (the 312 randomised patients; Fleming & Harrington 1991): treatment = trt == 1
# (D-penicillamine), death = status 2 (transplant = censored), times from days to months
# (days / 30.4375). Many events (125 deaths) but hazards far below the reference baseline
# prior's Normal(-2.5, 2) per month (median survival ~9 years): the prior's location, not few
# events, is what informs the HR here.
library(survival)
d <- pbc[!is.na(pbc$trt), ]
d$treatment <- as.integer(d$trt == 1)
d$time_months <- d$time / 30.4375
d$death <- as.integer(d$status == 2)
write.csv(data.frame(id = d$id, treatment = d$treatment, os_time = d$time_months,
                     os_event = d$death, age = d$age, bili = d$bili, albumin = d$albumin),
          "survival_pbc.csv", row.names = FALSE)
# PWE Poisson GLM (maximum likelihood) on the 8 quantile intervals of the death times (R's
# quantile type 7 = NumPy's default), interval (a, b] convention; crude control-arm log hazard
cuts <- c(0, unname(quantile(d$time_months[d$death == 1], (1:7) / 8, type = 7)))
s <- survSplit(Surv(time_months, death) ~ treatment, data = d, cut = cuts[-1],
               episode = "interval", start = "tstart", end = "tstop")
s$exposure <- s$tstop - s$tstart
fit <- glm(death ~ factor(interval) + treatment + offset(log(exposure)), family = poisson,
           data = s[s$exposure > 0, ])
control <- d$treatment == 0
out <- data.frame(
  quantity = c("pwe_glm_log_hr", "pwe_glm_se", "crude_log_hazard_control",
               paste0("cut_", seq_along(cuts))),
  value = c(coef(fit)[["treatment"]], sqrt(vcov(fit)["treatment", "treatment"]),
            log(sum(d$death[control]) / sum(d$time_months[control])), cuts))
write.csv(out, "survival_pbc_reference.csv", row.names = FALSE)
cat(sprintf("%s = %.8f\n", out$quantity, out$value), sep = "")
