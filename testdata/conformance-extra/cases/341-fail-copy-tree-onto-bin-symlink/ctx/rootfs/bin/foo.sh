#!/bin/sh
echo foo
