#!/bin/sh
echo hello from /bin
