# Reference values for tests/test_survival.py (run from tests/reference/: Rscript survival_veteran.R)
# Data: survival::veteran (Veterans' Administration lung cancer trial), times converted from days
# to months (days / 30.4375). trt: 1 = standard, 2 = test -> treatment = trt - 1.
library(survival)
d <- veteran
d$treatment <- d$trt - 1
d$time_months <- d$time / 30.4375
write.csv(data.frame(id = seq_len(nrow(d)), treatment = d$treatment, time_months = d$time_months,
                     status = d$status, time_days = d$time, celltype = d$celltype,
                     karno = d$karno, age = d$age, prior = d$prior),
          "survival_veteran.csv", row.names = FALSE)
# PWE Poisson GLM on fixed cut points (months): split at cuts, interval (a, b] convention
cuts <- c(0, 1, 2, 3, 4, 6, 9, 12)
s <- survSplit(Surv(time_months, status) ~ treatment, data = d, cut = cuts[-1],
               episode = "interval", start = "tstart", end = "tstop")
s$exposure <- s$tstop - s$tstart
fit <- glm(status ~ factor(interval) + treatment + offset(log(exposure)), family = poisson,
           data = s[s$exposure > 0, ])
cox <- coxph(Surv(time_months, status) ~ treatment, data = d, ties = "efron")
out <- data.frame(
  quantity = c("pwe_glm_log_hr", "pwe_glm_se", "cox_efron_log_hr", "cox_efron_se"),
  value = c(coef(fit)[["treatment"]], sqrt(vcov(fit)["treatment", "treatment"]),
            coef(cox)[["treatment"]], sqrt(vcov(cox)[1, 1])))
write.csv(out, "survival_veteran_reference.csv", row.names = FALSE)
cat(sprintf("%s = %.8f\n", out$quantity, out$value), sep = "")
cat("cuts:", cuts, "\n")
