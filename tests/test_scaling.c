/* test_scaling.c - §3: model-scale accounting (Table 3), the fitted laws (Table 2), power-law fits. */

static void fmt3(double v, char *out, size_t cap) { /* "25.2M", "3.02B": three significant digits, as the paper prints */
    if (v >= 1e9) snprintf(out, cap, "%.3gB", v / 1e9);
    else snprintf(out, cap, "%.3gM", v / 1e6);
}

static void test_table3_reproduced(void) {
    static const struct { int L, d; const char *n1, *n2, *m; double r1, r2; } rows[] = {
        {8, 512, "25.2M", "77.6M", "352M", 0.43, 1.32},     {12, 768, "84.9M", "164M", "963M", 0.53, 1.02},
        {24, 1024, "302M", "407M", "3.02B", 0.60, 0.81},    {24, 2048, "1.21B", "1.42B", "9.66B", 0.75, 0.88},
        {32, 4096, "6.44B", "6.86B", "45.1B", 0.85, 0.91},  {40, 5120, "12.6B", "13.1B", "85.6B", 0.88, 0.92},
        {80, 8192, "64.4B", "65.3B", "419B", 0.92, 0.94},
    };
    size_t i;
    for (i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char a[32], b[32], c[32];
        double n1 = ds_scale_n1(rows[i].L, rows[i].d), n2 = ds_scale_n2(rows[i].L, rows[i].d, 102400), m = ds_scale_m(rows[i].L, rows[i].d, 4096);
        fmt3(n1, a, sizeof a), fmt3(n2, b, sizeof b), fmt3(m, c, sizeof c);
        CHECKF(!strcmp(a, rows[i].n1) && !strcmp(b, rows[i].n2) && !strcmp(c, rows[i].m), "row %zu: N1 %s N2 %s M %s, the paper %s %s %s", i, a,
               b, c, rows[i].n1, rows[i].n2, rows[i].m);
        /* the ratios at two decimals; the 32 x 4096 row's 6N1/M is 0.857, which the paper prints as 0.85 */
        CHECKF(fabs(6 * n1 / m - rows[i].r1) < 0.0075 && fabs(6 * n2 / m - rows[i].r2) < 0.005, "row %zu: 6N1/M %.3f, 6N2/M %.3f", i,
               6 * n1 / m, 6 * n2 / m);
    }
}

static void test_fitted_laws_give_table2(void) {
    /* the 7B: C = M D with M from Table 3's formula (30 layers, d 4096, l_seq 4096) and D = 2T */
    double C = ds_scale_m(30, 4096, 4096) * 2e12, B = ds_law_batch_opt(C) / 4096.0, eta = ds_law_eta_opt(C);
    CHECKF(fabs(C / 8.46e22 - 1) < 0.005, "C = %.3g", C);
    CHECKF(fabs(B / 2304 - 1) < 0.05, "B_opt %.0f sequences, Table 2: 2304", B);
    CHECKF(fabs(eta / 4.2e-4 - 1) < 0.05, "eta_opt %.3g, Table 2: 4.2e-4", eta);
    CHECK(fabs(ds_law_m_opt(C) * ds_law_d_opt(C) / C - 1) < 0.01); /* a + b = 1: M_opt D_opt = C */
}

static void test_model_flops_per_token(void) {
    ds_config c;
    ds_error e;
    ds_config_preset("small", &c, &e);
    /* by hand: per layer q 256x256, k and v 128x256 each (GQA), o 256x256, gate/up/down 3 x 256 x 704;
       6 x (6 layers + LM head 4096 x 256) + 12 x 6 x 256 x 256 */
    CHECK(ds_model_flops_per_token(&c, 256) == 6.0 * (6 * 737280.0 + 4096.0 * 256) + 12.0 * 6 * 256 * 256);
}

static void test_power_law_fit(void) {
    double x[24], y[24];
    ds_power_law p;
    ds_error e;
    int i;
    uint64_t s = 99;
    for (i = 0; i < 8; i++) { x[i] = pow(10.0, 17 + 0.5 * i); y[i] = 3.0 * pow(x[i], -0.5); }
    CHECK_OK(ds_fit_power_law(x, y, 8, &p, &e_));
    CHECKF(fabs(p.k / 3.0 - 1) < 1e-9 && fabs(p.alpha + 0.5) < 1e-12 && fabs(p.r2 - 1) < 1e-12 && p.se_alpha < 1e-10, "k %.12g alpha %.12g", p.k, p.alpha);
    /* with 5% log-normal noise: the exponent within three standard errors of the truth */
    for (i = 0; i < 24; i++) { x[i] = pow(10.0, 17 + 0.15 * i); y[i] = 2.0 * pow(x[i], 0.7) * exp(0.05 * ds__normal(&s)); }
    CHECK_OK(ds_fit_power_law(x, y, 24, &p, &e_));
    CHECKF(fabs(p.alpha - 0.7) < 3 * p.se_alpha && fabs(log(p.k) - log(2.0)) < 3 * p.se_log_k && p.se_alpha > 0 && p.r2 > 0.99,
           "alpha %.4f +- %.4f, log k %.3f +- %.3f", p.alpha, p.se_alpha, log(p.k), p.se_log_k);
    CHECK(fabs(ds_power_law_eval(&p, 1e18) / (p.k * pow(1e18, p.alpha)) - 1) < 1e-12);
    /* refusals, each with its reason */
    CHECK(ds_fit_power_law(x, y, 1, &p, &e) == DS_ERR_INVALID && strstr(e.msg, "at least 2"));
    y[3] = 0;
    CHECK(ds_fit_power_law(x, y, 24, &p, &e) == DS_ERR_INVALID && strstr(e.msg, "point 3"));
    y[3] = NAN;
    CHECK(ds_fit_power_law(x, y, 24, &p, &e) == DS_ERR_INVALID && strstr(e.msg, "positive"));
    y[3] = 1, x[1] = -5;
    CHECK(ds_fit_power_law(x, y, 24, &p, &e) == DS_ERR_INVALID);
    for (i = 0; i < 4; i++) x[i] = 1e18, y[i] = 1 + i;
    CHECK(ds_fit_power_law(x, y, 4, &p, &e) == DS_ERR_INVALID && strstr(e.msg, "same"));
}


/* Synthetic IsoFLOP profiles with a known optimum: loss = 2 C^-0.05 + 0.3 (ln M - ln M_opt)^2,
   M_opt = 0.1715 C^0.5243 (the paper's law). The fit must return the exponents exactly. */
static void test_isoflop_fit_recovers_the_law(void) {
    ds_isoflop_run runs[4 * 5];
    static const double f[5] = {1.0 / 8, 1.0 / 3, 1, 3, 8};
    ds_isoflop_fit fit;
    int b, i, n = 0;
    for (b = 0; b < 4; b++) {
        double C = pow(10.0, 17 + b), mo = 0.1715 * pow(C, 0.5243);
        for (i = 0; i < 5; i++) {
            double M = mo * f[i], d = log(M) - log(mo);
            runs[n].C = C, runs[n].M = M, runs[n].loss = 2 * pow(C, -0.05) + 0.3 * d * d, n++;
        }
    }
    CHECK_OK(ds_fit_isoflop(runs, n, &fit, &e_));
    CHECK(fit.n_budgets == 4);
    CHECKF(fabs(fit.m_law.alpha - 0.5243) < 1e-9 && fabs(fit.m_law.k / 0.1715 - 1) < 1e-6, "a %.6f k %.6f", fit.m_law.alpha, fit.m_law.k);
    CHECKF(fabs(fit.d_law.alpha - 0.4757) < 1e-9, "b %.6f", fit.d_law.alpha);
    CHECKF(fabs(fit.loss_law.alpha + 0.05) < 1e-9 && fabs(fit.loss_law.k - 2) < 1e-6, "loss law %.6f C^%.6f", fit.loss_law.k, fit.loss_law.alpha);
    CHECK(fabs(fit.M_opt[2] * fit.D_opt[2] / fit.C[2] - 1) < 1e-12);
}

static void test_isoflop_fit_refuses_degenerate_grids(void) {
    ds_isoflop_run r[10];
    ds_isoflop_fit fit;
    ds_error e;
    int i;
    for (i = 0; i < 10; i++) r[i].C = i < 5 ? 1e18 : 1e19, r[i].M = pow(10.0, 8 + i % 5), r[i].loss = 3 + 0.1 * ((i % 5) - 2) * ((i % 5) - 2);
    CHECK(ds_fit_isoflop(r, 5, &fit, &e) == DS_ERR_INVALID && strstr(e.msg, "one budget"));
    r[7].loss = NAN;
    CHECK(ds_fit_isoflop(r, 10, &fit, &e) == DS_ERR_INVALID && strstr(e.msg, "run 7"));
    r[7].loss = 3;
    CHECK(ds_fit_isoflop(r, 7, &fit, &e) == DS_ERR_INVALID && strstr(e.msg, "2 models"));
    for (i = 5; i < 10; i++) r[i].loss = 3 - 0.1 * ((i % 5) - 2) * ((i % 5) - 2); /* a maximum, not a minimum */
    CHECK(ds_fit_isoflop(r, 10, &fit, &e) == DS_ERR_INVALID && strstr(e.msg, "no minimum"));
    for (i = 5; i < 10; i++) r[i].loss = 3 - 0.1 * (i % 5); /* still falling at the largest model */
    CHECK(ds_fit_isoflop(r, 10, &fit, &e) == DS_ERR_INVALID && (strstr(e.msg, "larger") || strstr(e.msg, "no minimum")));
}

/* A (batch, lr) grid around the paper's optima; only the centre is within 0.25% of the best. */
static void test_hyperparameter_fit(void) {
    ds_hp_run runs[3 * 9];
    ds_power_law eta, batch;
    ds_error e;
    int b, i, j, n = 0, sel = 0;
    for (b = 0; b < 3; b++) {
        double C = pow(10.0, 17 + b), lr0 = ds_law_eta_opt(C), b0 = ds_law_batch_opt(C);
        for (i = -1; i <= 1; i++)
            for (j = -1; j <= 1; j++) {
                double dl = i * log(2.0), db = j * log(2.0);
                runs[n].C = C, runs[n].lr = lr0 * exp(dl), runs[n].batch = b0 * exp(db), runs[n].loss = 1.0 + 0.01 * (dl * dl + db * db), n++;
            }
    }
    CHECK_OK(ds_fit_hyperparams(runs, n, 0.0025, &eta, &batch, &sel, &e_));
    CHECK(sel == 3);
    CHECKF(fabs(eta.alpha + 0.125) < 1e-9 && fabs(eta.k / 0.3118 - 1) < 1e-6, "eta %.6f C^%.6f", eta.k, eta.alpha);
    CHECKF(fabs(batch.alpha - 0.3271) < 1e-9 && fabs(batch.k / 0.2920 - 1) < 1e-6, "batch %.6f C^%.6f", batch.k, batch.alpha);
    CHECK_OK(ds_fit_hyperparams(runs, n, 0.01, &eta, &batch, &sel, &e_)); /* a looser threshold keeps more runs */
    CHECK(sel > 3 && fabs(eta.alpha + 0.125) < 1e-9);
    CHECK(ds_fit_hyperparams(runs, 9, 0.0025, &eta, &batch, &sel, &e) == DS_ERR_INVALID && strstr(e.msg, "one budget"));
    runs[4].loss = NAN;
    CHECK(ds_fit_hyperparams(runs, n, 0.0025, &eta, &batch, &sel, &e) == DS_ERR_INVALID && strstr(e.msg, "run 4"));
}

static void suite_scaling(void) {
    RUN(test_table3_reproduced);
    RUN(test_fitted_laws_give_table2);
    RUN(test_model_flops_per_token);
    RUN(test_power_law_fit);
    RUN(test_isoflop_fit_recovers_the_law);
    RUN(test_isoflop_fit_refuses_degenerate_grids);
    RUN(test_hyperparameter_fit);
}
