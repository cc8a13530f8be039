# Reference matched sets from R's MatchIt, for tests/test_matching_matchit.py.
#
# Run from the repository root:  Rscript tests/reference/matchit_make_reference.R
# Written with R 4.2.2 and MatchIt 4.5.1 (the versions are recorded in matchit_versions.csv).
#
# Writes (all in tests/reference/):
#   matchit_lalonde.csv        MatchIt::lalonde with id = row name, treatment = treat, race as 0/1 columns
#   matchit_simulated.csv      a simulated cohort (seed 20240329) with a known logistic assignment model
#   matchit_ties.csv           a simulated distance with many exact ties (distance on a grid of 0.25)
#   matchit_pairs.csv          config, treated_id, control_id: MatchIt's match.matrix, one row per pair
#                              (see the note on MatchIt 4.5.1's abs() bug below)
#   matchit_configs.csv        config, dataset, m_order, caliper (SD units), caliper_distance (units of the
#                              distance, i.e. m$caliper), n_pairs
#   matchit_lalonde_distance.csv, matchit_simulated_distance.csv
#                              id, distance: MatchIt's linear-logit propensity score (glm)
#   matchit_lalonde_glm.csv    term, estimate, se of the logistic PS model fitted by glm() on lalonde
#   matchit_lalonde_balance.csv  summary(m, standardize = TRUE) before/after matching for config
#                              lalonde_largest_0.2 (SMD denominator: SD of the treated, full sample)
#   matchit_versions.csv       package versions used
#
# Numbers that feed exact comparisons (distances) are written with 17 significant digits.
suppressPackageStartupMessages(library(MatchIt))

out <- "tests/reference"
fmt <- function(x) sprintf("%.17g", x)

# ---- data sets -------------------------------------------------------------------------------
data("lalonde", package = "MatchIt")
lal <- data.frame(
  id = rownames(lalonde), treatment = lalonde$treat, age = lalonde$age, educ = lalonde$educ,
  black = as.integer(lalonde$race == "black"), hispan = as.integer(lalonde$race == "hispan"),
  white = as.integer(lalonde$race == "white"), married = lalonde$married,
  nodegree = lalonde$nodegree, re74 = lalonde$re74, re75 = lalonde$re75, re78 = lalonde$re78
)
write.csv(lal, file.path(out, "matchit_lalonde.csv"), row.names = FALSE)
lal_formula <- treatment ~ age + educ + black + hispan + married + nodegree + re74 + re75

set.seed(20240329)
n <- 400
sim <- data.frame(id = sprintf("S%03d", seq_len(n)))
sim$age <- round(rnorm(n, 58, 10), 1)
sim$male <- rbinom(n, 1, 0.85)
sim$hbv <- rbinom(n, 1, 0.75)
sim$ecog_1 <- rbinom(n, 1, 0.4)
sim$afp_400 <- rbinom(n, 1, 0.45)
sim$tumor_size_cm <- round(exp(rnorm(n, log(7), 0.4)), 1)
sim$mvi <- rbinom(n, 1, 0.4)
lp <- -0.3 - 0.04 * (sim$age - 58) + 0.3 * sim$male + 0.4 * sim$hbv - 0.7 * sim$ecog_1 +
  0.5 * sim$afp_400 + 0.15 * (sim$tumor_size_cm - 7) + 0.9 * sim$mvi
sim$treatment <- rbinom(n, 1, plogis(lp))
sim <- sim[, c("id", "treatment", setdiff(names(sim), c("id", "treatment")))]
write.csv(sim, file.path(out, "matchit_simulated.csv"), row.names = FALSE)
sim_formula <- treatment ~ age + male + hbv + ecog_1 + afp_400 + tumor_size_cm + mvi

# Distances on a grid of quarters (exact in binary floating point), so that many units share a
# distance and many treated units are exactly as far from a control on the left as on the right.
set.seed(7)
nt <- 150
ties <- data.frame(id = sprintf("T%03d", seq_len(nt)), treatment = rbinom(nt, 1, 0.4))
ties$distance <- round(4 * rnorm(nt, 0.6 * ties$treatment, 1)) / 4
write.csv(ties, file.path(out, "matchit_ties.csv"), row.names = FALSE)

# ---- matching --------------------------------------------------------------------------------
pairs <- list()
configs <- list()
# MatchIt 4.5.1 (the version installed here) has a bug in nearest-neighbour matching on a vector
# distance (MatchIt issue #163, "Caliper not working as intended on versions 4.5.1 - 4.5.3"): its
# C++ code calls the integer abs() on distance differences, so |d_i - d_j| is truncated to an
# integer before it is compared with the caliper and before the nearer of the left and right
# neighbours is chosen. With default settings a 0.2-SD caliper is then never binding on the logit
# scale (pairs up to 0.9995 logit apart are kept on lalonde against a caliper of 0.361).
# Work-around used here: match on the distance multiplied by 2^26. Multiplying by a power of two
# is exact in floating point (differences, the SD and hence the standardised caliper scale
# exactly), and truncating |difference| * 2^26 to an integer changes a decision only when two
# compared quantities are within 2^-26 (1.5e-8 logit units) of each other. The results are the
# matched sets MatchIt's algorithm gives with a correct abs(); run() checks that a coarser scale
# (2^20) gives the same pairs, i.e. that no decision here is that close to a boundary.
# All distances must satisfy |d| * 2^26 < 2^31, i.e. |d| < 32 (checked).
lp_distance <- function(formula, data) {
  unname(matchit(formula, data = data, method = NULL, distance = "glm", link = "linear.logit")$distance)
}

match_pairs <- function(data, distance, m.order, caliper, scale) {
  args <- list(formula = treatment ~ 1, data = data, method = "nearest", distance = distance * scale,
               m.order = m.order, replace = FALSE, ratio = 1)
  if (!is.na(caliper)) {
    args$caliper <- caliper
    args$std.caliper <- TRUE
  }
  m <- suppressWarnings(do.call(matchit, args))
  mm <- m$match.matrix
  ok <- !is.na(mm[, 1])
  ids <- data$id
  names(ids) <- rownames(data)
  list(pairs = data.frame(treated_id = ids[rownames(mm)[ok]], control_id = ids[mm[ok, 1]]),
       caliper = if (is.null(m$caliper)) NA_real_ else unname(m$caliper) / scale)
}

run <- function(config, dataset, data, distance, m.order = "largest", caliper = 0.2) {
  stopifnot(max(abs(distance)) < 16)
  fine <- match_pairs(data, distance, m.order, caliper, 2^26)
  coarse <- match_pairs(data, distance, m.order, caliper, 2^20)
  stopifnot(identical(fine$pairs, coarse$pairs))
  pairs[[config]] <<- data.frame(config = config, fine$pairs)
  configs[[config]] <<- data.frame(
    config = config, dataset = dataset, m_order = m.order, caliper = caliper,
    caliper_distance = if (is.na(fine$caliper)) NA_character_ else fmt(fine$caliper),
    n_pairs = nrow(fine$pairs)
  )
  invisible(fine)
}

d_lal <- lp_distance(lal_formula, lal)
d_sim <- lp_distance(sim_formula, sim)
run("lalonde_largest_0.2", "lalonde", lal, d_lal)
run("lalonde_smallest_0.2", "lalonde", lal, d_lal, m.order = "smallest")
run("lalonde_data_0.2", "lalonde", lal, d_lal, m.order = "data")
run("lalonde_largest_0.05", "lalonde", lal, d_lal, caliper = 0.05)
run("lalonde_largest_none", "lalonde", lal, d_lal, caliper = NA)
run("simulated_largest_0.2", "simulated", sim, d_sim)
run("simulated_smallest_0.1", "simulated", sim, d_sim, m.order = "smallest", caliper = 0.1)
run("ties_largest_0.3", "ties", ties, ties$distance, caliper = 0.3)
run("ties_smallest_0.6", "ties", ties, ties$distance, m.order = "smallest", caliper = 0.6)
run("ties_data_0.3", "ties", ties, ties$distance, m.order = "data", caliper = 0.3)
run("ties_largest_none", "ties", ties, ties$distance, caliper = NA)

write.csv(do.call(rbind, pairs), file.path(out, "matchit_pairs.csv"), row.names = FALSE)
write.csv(do.call(rbind, configs), file.path(out, "matchit_configs.csv"), row.names = FALSE)

# The linear-logit distances MatchIt estimated (so the matching can be checked apart from the fit).
write.csv(data.frame(id = lal$id, distance = fmt(d_lal)),
          file.path(out, "matchit_lalonde_distance.csv"), row.names = FALSE)
write.csv(data.frame(id = sim$id, distance = fmt(d_sim)),
          file.path(out, "matchit_simulated_distance.csv"), row.names = FALSE)

# The bug, for the record: MatchIt 4.5.1 called as documented, without the work-around.
m_raw <- matchit(lal_formula, data = lal, method = "nearest", distance = "glm",
                 link = "linear.logit", caliper = 0.2, std.caliper = TRUE)
mm <- m_raw$match.matrix[!is.na(m_raw$match.matrix[, 1]), 1]
gap <- abs(m_raw$distance[names(mm)] - m_raw$distance[mm])
cat(sprintf("MatchIt %s as called by users on lalonde: %d pairs, largest |logit difference| %.4f, caliper %.4f\n",
            packageVersion("MatchIt"), length(mm), max(gap), m_raw$caliper))

# ---- PS model and balance on lalonde ---------------------------------------------------------
fit <- glm(lal_formula, data = lal, family = binomial())
co <- summary(fit)$coefficients
write.csv(data.frame(term = rownames(co), estimate = fmt(co[, 1]), se = fmt(co[, 2])),
          file.path(out, "matchit_lalonde_glm.csv"), row.names = FALSE)

# Balance as MatchIt's summary() reports it, for the matched set of config lalonde_largest_0.2
# (summary() does not depend on the bug, only the matched set does; the scaled distance gives the
# correct set). Covariates are given through addlvariables; the row of the distance is not written.
m_lal <- suppressWarnings(matchit(treatment ~ 1, data = lal, method = "nearest",
                                  distance = d_lal * 2^26, caliper = 0.2, std.caliper = TRUE))
s <- summary(m_lal, standardize = TRUE,
             addlvariables = lal[c("age", "educ", "black", "hispan", "white", "married", "nodegree",
                                   "re74", "re75")])
keep <- c("age", "educ", "black", "hispan", "white", "married", "nodegree", "re74", "re75")
bal <- data.frame(
  covariate = keep,
  smd_before = fmt(s$sum.all[keep, "Std. Mean Diff."]),
  smd_matched = fmt(s$sum.matched[keep, "Std. Mean Diff."]),
  vr_before = fmt(s$sum.all[keep, "Var. Ratio"]),
  vr_matched = fmt(s$sum.matched[keep, "Var. Ratio"])
)
write.csv(bal, file.path(out, "matchit_lalonde_balance.csv"), row.names = FALSE)

write.csv(data.frame(
  package = c("R", "MatchIt"),
  version = c(paste(R.version$major, R.version$minor, sep = "."), as.character(packageVersion("MatchIt")))
), file.path(out, "matchit_versions.csv"), row.names = FALSE)
