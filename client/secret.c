/* SPDX-License-Identifier: MIT */
#include "client/secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "util/buf.h"
#include "util/file.h"

static int read_file(const char *file, char *out, size_t n, size_t *len, struct circ_err *err)
{
	struct buf b = { 0 };
	size_t l;
	int rc = 0;

	/* file_read_all names the file and the cause; the secret's bytes go into no message. */
	if (file_read_all(file, n, &b, err))
		return -1;
	for (l = 0; l < b.len && b.data[l] != '\n' && b.data[l] != '\r'; l++)
		;
	if (l == 0 || l >= n || memchr(b.data, '\0', l))
		rc = err_set(err, EINVAL, "%s: the first line must hold the secret", file);
	else {
		memcpy(out, b.data, l);
		out[l] = '\0';
		*len = l;
	}
	if (b.data)
		OPENSSL_cleanse(b.data, b.cap);
	buf_free(&b);
	return rc;
}

/* One line from the terminal, echo off. */
static int read_tty(int fd, const char *prompt, char *out, size_t n, size_t *len,
                    struct circ_err *err)
{
	struct termios old, quiet;
	size_t l = 0;
	bool restore;
	char c;

	restore = tcgetattr(fd, &old) == 0;
	if (restore) {
		quiet = old;
		quiet.c_lflag &= (tcflag_t) ~(ECHO | ECHONL);
		quiet.c_lflag |= ICANON;
		tcsetattr(fd, TCSAFLUSH, &quiet);
	}
	if (write(fd, prompt, strlen(prompt)) < 0) {
		/* The prompt is a courtesy; reading is what matters. */
	}
	while (read(fd, &c, 1) == 1 && c != '\n')
		if (l + 1 < n)
			out[l++] = c;
	out[l] = '\0';
	if (restore)
		tcsetattr(fd, TCSAFLUSH, &old);
	if (write(fd, "\n", 1) < 0) {
	}
	if (l == 0)
		return err_set(err, EINVAL, "no secret given");
	*len = l;
	return 0;
}

int secret_read(const char *file, const char *prompt, bool confirm, char *out, size_t n,
                size_t *len, struct circ_err *err)
{
	char again[MIGRATE_SECRET_MAX];
	size_t l2 = 0;
	int fd, rc;

	if (file)
		return read_file(file, out, n, len, err);
	fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return err_set(err, ENXIO,
		               "%s needed and no terminal to ask: give it in a file (see --help)",
		               prompt);
	rc = read_tty(fd, prompt, out, n, len, err);
	if (!rc && confirm) {
		rc = read_tty(fd, "Again: ", again, sizeof(again), &l2, err);
		if (!rc && (l2 != *len || CRYPTO_memcmp(again, out, l2) != 0))
			rc = err_set(err, EINVAL, "the two entries differ");
	}
	OPENSSL_cleanse(again, sizeof(again));
	close(fd);
	return rc;
}

static const char *source(const char *option, const char *env)
{
	const char *v = getenv(env);

	return option ? option : v && *v ? v : NULL;
}

static int ask_password(void *ctx, const char *user, char *out, size_t n, struct circ_err *err)
{
	struct secret_source *src = ctx;
	char prompt[128];
	size_t len;

	snprintf(prompt, sizeof(prompt), "Server password for %s: ", user);
	return secret_read(source(src->password_file, "CIRC_PASSWORD_FILE"), prompt, false, out, n,
	                   &len, err);
}

static int ask_passphrase(void *ctx, const char *user, bool confirm, char *out, size_t n,
                          size_t *len, struct circ_err *err)
{
	struct secret_source *src = ctx;
	char prompt[128];

	snprintf(prompt, sizeof(prompt),
	         confirm ? "New passphrase for %s's key: " : "Passphrase for %s's key: ", user);
	return secret_read(source(src->passphrase_file, "CIRC_PASSPHRASE_FILE"), prompt, confirm,
	                   out, n, len, err);
}

struct migrate_prompt secret_prompt(struct secret_source *src)
{
	return (struct migrate_prompt){
		.password = ask_password,
		.passphrase = ask_passphrase,
		.ctx = src,
		.password_given = source(src->password_file, "CIRC_PASSWORD_FILE") != NULL,
	};
}

int secret_option(struct cli *cli, struct secret_source *src, struct state_net *net, int c,
                  const char *arg)
{
	uint64_t secs;

	switch (c) {
	case OPT_PASSWORD_FILE:
		src->password_file = arg;
		return 1;
	case OPT_PASSPHRASE_FILE:
		src->passphrase_file = arg;
		return 1;
	case OPT_REQUEST_TIMEOUT:
		if (cli_parse_u64(arg, &secs) || secs == 0 || secs > 86400)
			return cli_usage_error(cli, "bad --timeout '%s'", arg);
		net->timeout_ms = (long)secs * 1000;
		return 1;
	default:
		return 0;
	}
}
