"""Statistics over candidates and sets: Spearman, bootstrap, partial rho, FDR, max-T null, power, reliability, the headline."""
